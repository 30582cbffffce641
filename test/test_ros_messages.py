"""The package's messages and the vision_msgs stand-in, through a real publisher and subscriber."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.ros

# vision_msgs 4.1.x (Humble and later), field for field: a real install publishes these.
VISION_MSGS_4_LAYOUT = {
    "Point2D": {"x": "double", "y": "double"},
    "Pose2D": {"position": "vision_msgs/Point2D", "theta": "double"},
    "BoundingBox2D": {"center": "vision_msgs/Pose2D", "size_x": "double", "size_y": "double"},
    "ObjectHypothesis": {"class_id": "string", "score": "double"},
    "ObjectHypothesisWithPose": {
        "hypothesis": "vision_msgs/ObjectHypothesis",
        "pose": "geometry_msgs/PoseWithCovariance",
    },
    "Detection2D": {
        "header": "std_msgs/Header",
        "results": "sequence<vision_msgs/ObjectHypothesisWithPose>",
        "bbox": "vision_msgs/BoundingBox2D",
        "id": "string",
    },
    "Detection2DArray": {"header": "std_msgs/Header", "detections": "sequence<vision_msgs/Detection2D>"},
    "VisionClass": {"class_id": "uint16", "class_name": "string"},
    "LabelInfo": {
        "header": "std_msgs/Header",
        "class_map": "sequence<vision_msgs/VisionClass>",
        "threshold": "float",
    },
}


@pytest.mark.parametrize("name", sorted(VISION_MSGS_4_LAYOUT))
def test_vision_msgs_layout_matches_4x(name):
    import vision_msgs.msg

    cls = getattr(vision_msgs.msg, name)
    assert cls.get_fields_and_field_types() == VISION_MSGS_4_LAYOUT[name]


def test_messages_round_trip_over_dds(rclpy_session):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

    from _ros import spin_until
    from yolov8_trt_msgs.msg import TrackedObject, TrackedObjectArray

    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pub_node, sub_node = rclpy.create_node("msg_pub"), rclpy.create_node("msg_sub")
    executor = SingleThreadedExecutor()
    executor.add_node(pub_node)
    executor.add_node(sub_node)
    got_dets: list[Detection2DArray] = []
    got_tracks: list[TrackedObjectArray] = []
    sub_node.create_subscription(Detection2DArray, "rt_detections", got_dets.append, qos)
    sub_node.create_subscription(TrackedObjectArray, "rt_tracks", got_tracks.append, qos)
    det_pub = pub_node.create_publisher(Detection2DArray, "rt_detections", qos)
    trk_pub = pub_node.create_publisher(TrackedObjectArray, "rt_tracks", qos)

    dets = Detection2DArray()
    dets.header.frame_id = "cam"
    dets.header.stamp.sec = 42
    det = Detection2D(id="7")
    hyp = ObjectHypothesisWithPose()
    hyp.hypothesis.class_id = "person"
    hyp.hypothesis.score = 0.875
    det.results.append(hyp)
    det.bbox.center.position.x, det.bbox.center.position.y = 320.5, 240.25
    det.bbox.size_x, det.bbox.size_y = 40.0, 80.0
    dets.detections.append(det)

    tracks = TrackedObjectArray(header=dets.header)
    obj = TrackedObject(
        id=2**40 + 3,
        class_id="person",
        class_index=0,
        score=0.5,
        age=12,
        state=TrackedObject.STATE_LOST,
        velocity_x=-3.5,
        velocity_y=1.25,
    )
    obj.bbox = det.bbox
    tracks.objects.append(obj)

    assert spin_until(executor, lambda: det_pub.get_subscription_count() and trk_pub.get_subscription_count())
    det_pub.publish(dets)
    trk_pub.publish(tracks)
    assert spin_until(executor, lambda: got_dets and got_tracks)
    assert got_dets[0] == dets
    assert got_tracks[0] == tracks
    assert got_tracks[0].objects[0].id == 2**40 + 3
    for node in (pub_node, sub_node):
        executor.remove_node(node)
        node.destroy_node()


def test_serialized_messages_over_dds(rclpy_session):
    """Bytes from the CDR writers go out through publish(bytes) and arrive as normal messages;
    an Image published normally arrives on a raw subscription as bytes the parser reads."""
    import numpy as np
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from _ros import image_msg, spin_until
    from yolov8_trt_msgs.msg import TrackedObjectArray
    from yolov8_trt_ros.core.types import Detections, Track
    from yolov8_trt_ros.ros.serialization import (
        DetectionArrayWriter,
        FrameHeader,
        TrackArrayWriter,
        parse_image,
    )

    rng = np.random.default_rng()
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pub_node, sub_node = rclpy.create_node("cdr_pub"), rclpy.create_node("cdr_sub")
    executor = SingleThreadedExecutor()
    executor.add_node(pub_node)
    executor.add_node(sub_node)
    got_dets: list[Detection2DArray] = []
    got_tracks: list[TrackedObjectArray] = []
    got_raw: list[bytes] = []
    sub_node.create_subscription(Detection2DArray, "cdr_detections", got_dets.append, qos)
    sub_node.create_subscription(TrackedObjectArray, "cdr_tracks", got_tracks.append, qos)
    sub_node.create_subscription(Image, "cdr_image", got_raw.append, qos, raw=True)
    det_pub = pub_node.create_publisher(Detection2DArray, "cdr_detections", qos)
    trk_pub = pub_node.create_publisher(TrackedObjectArray, "cdr_tracks", qos)
    img_pub = pub_node.create_publisher(Image, "cdr_image", qos)

    xy = rng.uniform(0, 600, (5, 2))
    dets = Detections(np.hstack([xy, xy + 20]), rng.random(5), rng.integers(0, 3, 5))
    header = FrameHeader(17, 5000, "cam_ü")
    det_bytes = DetectionArrayWriter(["a", "bb", "ccc"], True).write(dets, header, [3, -1, 9, 10, 11])
    track = Track(9, 2, 0.5, (1.0, 2.0, 30.0, 40.0), (0.5, -0.25), 3, "tracked")
    trk_bytes = TrackArrayWriter(["a", "bb", "ccc"], True).write([track], header, 10.0)
    pixels = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)

    assert spin_until(
        executor,
        lambda: all(p.get_subscription_count() for p in (det_pub, trk_pub, img_pub)),
    )
    det_pub.publish(det_bytes)
    trk_pub.publish(trk_bytes)
    img_pub.publish(image_msg(pixels, frame_id="raw_cam", stamp_sec=3))
    assert spin_until(executor, lambda: got_dets and got_tracks and got_raw)

    assert got_dets[0] == deserialize_message(det_bytes, Detection2DArray)
    assert [d.id for d in got_dets[0].detections] == ["3", "", "9", "10", "11"]
    assert got_dets[0].header.frame_id == "cam_ü"
    assert got_tracks[0] == deserialize_message(trk_bytes, TrackedObjectArray)
    assert got_tracks[0].objects[0].velocity_x == 5.0  # 0.5 pixels/frame at 10 frames/s
    view = parse_image(got_raw[0])
    assert isinstance(got_raw[0], bytes)
    assert view.header == FrameHeader(3, 0, "raw_cam")
    assert (view.height, view.width, view.encoding, view.step) == (6, 8, "bgr8", 24)
    assert view.data == pixels.tobytes()
    for node in (pub_node, sub_node):
        executor.remove_node(node)
        node.destroy_node()
