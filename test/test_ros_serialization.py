"""The CDR writers and readers against rclpy's own serializer, on fresh random inputs.

Padding bytes are unspecified in CDR (rclpy leaves garbage there), so the writers are checked
by what ``deserialize_message`` reads back from their bytes, compared with the message object
built by ros.conversions, plus the exact serialized length (no missing or extra trailing bytes).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is not importable (run scripts/setup.sh)")

import contextlib

from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from yolov8_trt_msgs.msg import TrackedObject, TrackedObjectArray
from yolov8_trt_ros.core.image_input import ImageError
from yolov8_trt_ros.core.types import Detections, Track
from yolov8_trt_ros.ros import conversions
from yolov8_trt_ros.ros.serialization import (
    TRACK_STATE_CODES,
    DetectionArrayWriter,
    FrameHeader,
    FrameInterval,
    TrackArrayWriter,
    image_bytes,
    parse_compressed_image,
    parse_image,
    velocity_scale,
)

NAMES = ["person", "bicycle", "ca", "été", "traffic light", "x"]  # label lengths hit every padding
FRAME_IDS = ["", "cam", "ab", "kamera_ü", "camera_front_left_optical"]
STATES = list(TRACK_STATE_CODES)


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    seed = int(np.random.SeedSequence().entropy % 2**32)
    request.node.user_properties.append(("seed", seed))
    print(f"seed {seed}")  # shown when the test fails
    return np.random.default_rng(seed)


def _header(rng: np.random.Generator, frame_id: str) -> Header:
    header = Header(frame_id=frame_id)
    header.stamp.sec = int(rng.integers(-(2**31), 2**31))
    header.stamp.nanosec = int(rng.integers(0, 10**9))
    return header


def _detections(rng: np.random.Generator, n: int) -> Detections:
    xy = rng.uniform(0, 1900, (n, 2))
    wh = rng.uniform(0, 400, (n, 2))
    classes = rng.integers(0, len(NAMES) + 3, n)  # some beyond the table: published as numbers
    return Detections(np.hstack([xy, xy + wh]), rng.random(n), classes)


def _tracks(rng: np.random.Generator, n: int) -> list[Track]:
    return [
        Track(
            track_id=int(rng.integers(0, 2**63)),
            class_id=int(rng.integers(0, len(NAMES) + 3)),
            score=float(rng.random()),
            box_xyxy=tuple(rng.uniform(-50, 2000, 4).tolist()),  # type: ignore[arg-type]
            velocity_xy=tuple(rng.normal(0, 5, 2).tolist()),  # type: ignore[arg-type]
            age=int(rng.integers(0, 2**32)),
            state=STATES[int(rng.integers(0, len(STATES)))],  # type: ignore[arg-type]
        )
        for _ in range(n)
    ]


def _decoded_equal(written: bytes, built: object, msg_type: type) -> None:
    reference = serialize_message(built)
    assert len(written) == len(reference)
    assert deserialize_message(written, msg_type) == deserialize_message(reference, msg_type)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 120])
@pytest.mark.parametrize("use_names", [True, False])
@pytest.mark.parametrize("with_ids", [False, True])
def test_detection_array_bytes_decode_to_the_built_message(rng, n, use_names, with_ids):
    writer = DetectionArrayWriter(NAMES, use_names)
    for frame_id in FRAME_IDS:  # one writer across frame ids: its caches must not mix them up
        dets = _detections(rng, n)
        track_ids = rng.integers(-1, 10**7, n) if with_ids else None
        header = _header(rng, frame_id)
        built = conversions.detections_to_msg(dets, header, NAMES, use_names, track_ids)
        written = writer.write(dets, conversions.frame_header(header), track_ids)
        _decoded_equal(written, built, Detection2DArray)


def test_detection_id_is_the_track_id_or_empty(rng):
    dets = _detections(rng, 4)
    ids = np.array([17, -1, 0, 2**40])
    msg = conversions.detections_to_msg(dets, Header(), NAMES, True, ids)
    assert [d.id for d in msg.detections] == ["17", "", "0", str(2**40)]
    assert [d.id for d in conversions.detections_to_msg(dets, Header(), NAMES, True).detections] == [""] * 4
    decoded = deserialize_message(
        DetectionArrayWriter(NAMES, True).write(dets, FrameHeader(1, 2, "c"), ids), Detection2DArray
    )
    assert [d.id for d in decoded.detections] == ["17", "", "0", str(2**40)]


def test_track_ids_must_match_the_detections(rng):
    dets = _detections(rng, 3)
    with pytest.raises(ValueError, match="2 track ids for 3 detections"):
        DetectionArrayWriter(NAMES, True).write(dets, FrameHeader(0, 0, ""), [1, 2])
    with pytest.raises(ValueError, match="2 track ids for 3 detections"):
        conversions.detections_to_msg(dets, Header(), NAMES, True, [1, 2])


@pytest.mark.parametrize("n", [0, 1, 3, 200])
@pytest.mark.parametrize("use_names", [True, False])
def test_tracked_object_array_bytes_decode_to_the_built_message(rng, n, use_names):
    writer = TrackArrayWriter(NAMES, use_names)
    for frame_id, dt in zip(FRAME_IDS, [None, 0.033, -0.1, 1.5, 0.0], strict=True):
        tracks = _tracks(rng, n)
        header = _header(rng, frame_id)
        built = conversions.tracks_to_msg(tracks, header, NAMES, use_names, 30.0, dt)
        written = writer.write(tracks, conversions.frame_header(header), velocity_scale(dt, 30.0))
        _decoded_equal(written, built, TrackedObjectArray)


def test_track_velocity_is_pixels_per_second_of_stamp_time(rng):
    (track,) = _tracks(rng, 1)
    vx, vy = track.velocity_xy
    # frames dropped: 0.2 s between processed frames of a 30 Hz camera
    obj = conversions.tracks_to_msg([track], Header(), NAMES, True, 30.0, 0.2).objects[0]
    assert (obj.velocity_x, obj.velocity_y) == pytest.approx((vx * 5.0, vy * 5.0), rel=1e-6)
    for unknown in (None, 0.0, -0.04, float("nan")):  # fallback: one nominal frame period per step
        obj = conversions.tracks_to_msg([track], Header(), NAMES, True, 30.0, unknown).objects[0]
        assert (obj.velocity_x, obj.velocity_y) == pytest.approx((vx * 30.0, vy * 30.0), rel=1e-6)


def test_frame_interval_from_stamps():
    clock = FrameInterval()
    assert clock.update(10, 0) is None  # first frame
    assert clock.update(10, 250_000_000) == pytest.approx(0.25)
    assert clock.update(12, 0) == pytest.approx(1.75)
    assert clock.update(11, 0) is None  # went backwards
    assert clock.update(11, 100_000_000) == pytest.approx(0.1)  # measured from the latest stamp
    assert clock.update(11, 100_000_000) is None  # same stamp again
    clock.reset()
    assert clock.update(11, 200_000_000) is None


def test_track_state_codes_are_the_message_constants():
    assert TRACK_STATE_CODES == {
        "new": TrackedObject.STATE_NEW,
        "tracked": TrackedObject.STATE_TRACKED,
        "lost": TrackedObject.STATE_LOST,
        "removed": TrackedObject.STATE_REMOVED,
    }


# --- images -------------------------------------------------------------------------------------
def _random_image(rng: np.random.Generator, h: int, w: int, encoding: str, frame_id: str) -> Image:
    channels = {"bgr8": 3, "mono8": 1, "rgba8": 4, "yuv422_yuy2": 2}[encoding]
    pad = int(rng.integers(0, 5))
    rows = rng.integers(0, 256, (h, w * channels + pad), dtype=np.uint8)
    msg = Image(header=_header(rng, frame_id), height=h, width=w, encoding=encoding)
    msg.is_bigendian = int(rng.integers(0, 2))
    msg.step = w * channels + pad
    msg.data = rows.tobytes()
    return msg


@pytest.mark.parametrize("encoding", ["bgr8", "mono8", "rgba8", "yuv422_yuy2"])
def test_parse_image_gives_the_fields_and_a_view_of_the_bytes(rng, encoding):
    for frame_id in FRAME_IDS:
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        msg = _random_image(rng, h, 2 * w, encoding, frame_id)
        raw = serialize_message(msg)
        view = parse_image(raw)
        assert view.header == FrameHeader(msg.header.stamp.sec, msg.header.stamp.nanosec, frame_id)
        assert (view.height, view.width, view.encoding) == (msg.height, msg.width, encoding)
        assert (view.is_bigendian, view.step) == (msg.is_bigendian, msg.step)
        assert view.data.obj is raw  # a view into the received bytes, not a copy
        assert view.data == msg.data.tobytes()

        array, enc, header = conversions.raw_image_to_array(raw, max_pixels=10**6)
        expected, _ = conversions.image_to_array(msg, max_pixels=10**6)
        assert enc == encoding and header == view.header
        np.testing.assert_array_equal(array, expected)
        assert np.shares_memory(array, np.frombuffer(raw, np.uint8))


def test_parse_compressed_image(rng):
    pixels = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    ok, png = cv2.imencode(".png", pixels)
    assert ok
    msg = CompressedImage(header=_header(rng, "kamera_ü"), format="png")
    msg.data = png.tobytes()
    raw = serialize_message(msg)
    view = parse_compressed_image(raw)
    assert view.header == conversions.frame_header(msg.header)
    assert view.format == "png"
    assert view.data.obj is raw and view.data == png.tobytes()
    array, encoding, header = conversions.raw_compressed_to_array(raw, max_pixels=10**6)
    assert encoding == "bgr8" and header == view.header
    np.testing.assert_array_equal(array, pixels)  # PNG is lossless


def test_truncated_image_bytes_raise_image_error(rng):
    raw = serialize_message(_random_image(rng, 3, 4, "bgr8", "cam"))
    for cut in range(len(raw)):
        with pytest.raises(ImageError, match=r"truncated|too short") as info:
            parse_image(raw[:cut])
        assert info.value.reason == "bad_cdr"
    compressed = serialize_message(CompressedImage(format="jpeg", data=b"\xff\xd8\xff"))
    for cut in range(len(compressed)):
        with pytest.raises(ImageError, match=r"truncated|too short"):
            parse_compressed_image(compressed[:cut])


def test_bad_image_bytes_raise_image_error(rng):
    msg = _random_image(rng, 2, 2, "mono8", "cam")
    raw = bytearray(serialize_message(msg))
    wrong_kind = b"\x12\x34" + raw[2:]
    with pytest.raises(ImageError, match="unknown CDR encapsulation 1234"):
        parse_image(bytes(wrong_kind))
    no_nul = bytearray(raw)
    no_nul[4 + 8 + 4 + 3] = ord("!")  # the NUL ending frame_id "cam"
    with pytest.raises(ImageError, match="frame_id string is not NUL-terminated"):
        parse_image(bytes(no_nul))
    not_utf8 = bytearray(raw)
    not_utf8[4 + 8 + 4] = 0xFF
    with pytest.raises(ImageError, match="frame_id is not UTF-8"):
        parse_image(bytes(not_utf8))
    with pytest.raises(ImageError, match="expected serialized bytes, got int"):
        parse_image(42)
    huge_count = bytearray(raw)
    count_at = len(raw) - len(msg.data) - 4
    huge_count[count_at : count_at + 4] = (2**32 - 1).to_bytes(4, "little")
    with pytest.raises(ImageError, match="truncated at data"):
        parse_image(bytes(huge_count))


def test_garbage_bytes_never_raise_anything_but_image_error(rng):
    for _ in range(300):
        body = rng.integers(0, 256, int(rng.integers(0, 64)), dtype=np.uint8).tobytes()
        for parse in (parse_image, parse_compressed_image):
            with contextlib.suppress(ImageError):
                parse(b"\x00\x01\x00\x00" + body)


def test_big_endian_image_bytes_parse_too(rng):
    # Written by hand: rclpy only writes the host's byte order.
    frame = b"cam\x00"
    be = b"\x00\x00\x00\x00" + (5).to_bytes(4, "big") + (6).to_bytes(4, "big") + len(frame).to_bytes(4, "big")
    be += frame + (1).to_bytes(4, "big") + (2).to_bytes(4, "big") + (6).to_bytes(4, "big") + b"mono8\x00"
    be += b"\x01" + b"\x00" + (2).to_bytes(4, "big") + (2).to_bytes(4, "big") + b"\x07\x09"
    view = parse_image(be)
    assert view.header == FrameHeader(5, 6, "cam")
    assert (view.height, view.width, view.encoding, view.is_bigendian, view.step) == (1, 2, "mono8", 1, 2)
    assert view.data == b"\x07\x09"


@pytest.mark.parametrize("shape,encoding", [((7, 5, 3), "bgr8"), ((4, 6), "mono8"), ((0, 3, 3), "bgr8")])
def test_image_bytes_decode_to_array_to_image(rng, shape, encoding):
    array = rng.integers(0, 256, shape, dtype=np.uint8)
    header = _header(rng, "kamera_ü")
    built = conversions.array_to_image(array, encoding, header)
    _decoded_equal(image_bytes(array, encoding, conversions.frame_header(header)), built, Image)
