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
