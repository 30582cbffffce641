"""The rcl intake (ctypes over rcl, no GIL) against rclpy's own serializer, over real Fast DDS.

A publisher node sends Images; the intake takes them on its thread and hands over memoryviews
of its receive buffers. Each must hold what was sent (rclpy decodes it back to the same
message, at the length rclpy serializes it to; CDR padding bytes are unspecified), parse
to the same fields, never be overwritten while a view of it is alive, and be reused once none is.
"""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is not importable (run scripts/setup.sh)")

from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image

from _ros import image_msg, spin_until
from yolov8_trt_ros.ros.frame_gate import TakenElsewhere
from yolov8_trt_ros.ros.rcl_intake import RclIntake
from yolov8_trt_ros.ros.rcl_take import RclLibrary, ReceiveBuffers
from yolov8_trt_ros.ros.serialization import parse_image

RELIABLE = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


def _holds(raw: memoryview, msg: Image) -> bool:
    """``raw`` is a serialization of ``msg``: same length as rclpy's, decoding back to it."""
    data = bytes(raw)
    return len(data) == len(serialize_message(msg)) and deserialize_message(data, Image) == msg


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    seed = int(np.random.SeedSequence().entropy % 2**32)
    print(f"seed {seed}")  # shown when the test fails
    return np.random.default_rng(seed)


@pytest.fixture
def nodes(rclpy_session):
    pub_node, sub_node = Node("intake_test_pub"), Node("intake_test_sub")
    executor = SingleThreadedExecutor()
    executor.add_node(pub_node)
    executor.add_node(sub_node)
    try:
        yield pub_node, sub_node, executor
    finally:
        executor.shutdown()
        pub_node.destroy_node()
        sub_node.destroy_node()


class Received:
    """What the intake delivered, kept (with the views) until the test lets go."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, memoryview, dict[str, int]]] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def on_frame(self, camera: int, raw: memoryview, info: dict[str, int]) -> None:
        with self.lock:
            self.frames.append((camera, raw, info))

    def count(self) -> int:
        with self.lock:
            return len(self.frames)


def _start(node: Node, subs: list, received: Received, ready=lambda i: True, depth: int = 1) -> RclIntake:
    intake = RclIntake(node, subs, ready, received.on_frame, received.errors.append, history_depth=depth)
    intake.start()
    return intake


def _subscribe(node: Node, topics: list[str]) -> list:
    group = TakenElsewhere()  # the executor never runs these: the callback is never called
    subscribe = node.create_subscription
    return [subscribe(Image, t, print, RELIABLE, raw=True, callback_group=group) for t in topics]


def _publish_until(executor, pub, msg, got, n: int) -> bool:
    def sent() -> bool:
        pub.publish(msg)
        time.sleep(0.01)
        return got() >= n

    return spin_until(executor, sent, timeout=20.0)


def test_taken_bytes_are_rclpys_serialization_and_parse_to_the_sent_image(nodes, rng):
    pub_node, sub_node, executor = nodes
    pub = pub_node.create_publisher(Image, "cam_a", RELIABLE)
    subs = _subscribe(sub_node, ["cam_a"])
    received = Received()
    intake = _start(sub_node, subs, received)
    try:
        h, w = int(rng.integers(2, 300)), int(rng.integers(2, 300))
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        msg = image_msg(img, frame_id="front", stamp_sec=int(rng.integers(1, 1 << 30)))
        assert _publish_until(executor, pub, msg, received.count, 1), received.errors
    finally:
        assert intake.stop(5.0)
    camera, raw, info = received.frames[0]
    assert camera == 0
    assert _holds(raw, msg)
    view = parse_image(raw)
    assert (view.height, view.width, view.encoding, view.step) == (h, w, "bgr8", msg.step)
    assert (view.header.sec, view.header.frame_id) == (msg.header.stamp.sec, "front")
    assert np.array_equal(np.frombuffer(view.data, np.uint8).reshape(h, w, 3), img)
    assert info["publication_sequence_number"] >= 1
    assert not received.errors


def test_a_view_held_keeps_its_buffer_and_a_dropped_view_frees_it(nodes):
    pub_node, sub_node, executor = nodes
    pub = pub_node.create_publisher(Image, "cam_b", RELIABLE)
    subs = _subscribe(sub_node, ["cam_b"])
    received = Received()
    intake = _start(sub_node, subs, received)
    first = image_msg(np.full((40, 50, 3), 1, np.uint8), stamp_sec=1)
    try:
        assert _publish_until(executor, pub, first, received.count, 1)
        held = received.frames[0][1]
        second = image_msg(np.full((40, 50, 3), 2, np.uint8), stamp_sec=2)
        assert _publish_until(executor, pub, second, received.count, 2)
        assert _holds(held, first)  # not overwritten by the second take
        assert _holds(received.frames[-1][1], second)
        # Every view held has a buffer of its own (the publisher may have sent a frame twice
        # before it arrived), plus at most the one the intake made ready for the next frame.
        held_views = received.count()
        buffers_used = len(intake._buffers[0])
        assert held_views <= buffers_used <= held_views + 1
        # Let every view go: later frames reuse those buffers instead of making more.
        with received.lock:
            received.frames.clear()
        del held
        gc.collect()
        for k in range(3, 8):
            msg = image_msg(np.full((40, 50, 3), k, np.uint8), stamp_sec=k)
            assert _publish_until(executor, pub, msg, received.count, 1)
            assert _holds(received.frames[-1][1], msg)
            with received.lock:
                received.frames.clear()
        assert len(intake._buffers[0]) == buffers_used
    finally:
        assert intake.stop(5.0)


def test_a_camera_that_is_not_ready_is_not_taken_until_woken(nodes):
    pub_node, sub_node, executor = nodes
    pubs = [pub_node.create_publisher(Image, t, RELIABLE) for t in ("cam_c", "cam_d")]
    subs = _subscribe(sub_node, ["cam_c", "cam_d"])
    received = Received()
    ready = {0: True, 1: False}
    intake = _start(sub_node, subs, received, lambda i: ready[i])
    try:
        msgs = [image_msg(np.full((8, 8, 3), k, np.uint8), stamp_sec=k + 1) for k in range(2)]

        def both_sent() -> bool:
            for pub, msg in zip(pubs, msgs, strict=True):
                pub.publish(msg)
            time.sleep(0.01)
            return received.count() >= 1

        assert spin_until(executor, both_sent)
        spin_until(executor, lambda: False, timeout=0.3)
        assert {c for c, _, _ in received.frames} == {0}  # camera 1 stays in its history
        ready[1] = True
        intake.wake()
        assert spin_until(executor, lambda: any(c == 1 for c, _, _ in list(received.frames)), timeout=5.0)
        one = next(raw for c, raw, _ in received.frames if c == 1)
        assert _holds(one, msgs[1])
    finally:
        assert intake.stop(5.0)


def test_buffers_stop_at_their_limit_while_views_live(rclpy_session):
    buffers = ReceiveBuffers(RclLibrary.load(), limit=2)
    a = buffers.free_buffer()
    assert a is not None and a.free
    held_a = a.view()
    b = buffers.free_buffer()
    assert b is not None and b is not a
    held_b = b.view()
    assert buffers.free_buffer() is None  # both referenced: no third
    del held_a
    assert buffers.free_buffer() is a
    del held_b
    buffers.close()


def test_a_deeper_history_hands_over_its_newest_frame(nodes):
    pub_node, sub_node, executor = nodes
    deep = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    pub = pub_node.create_publisher(Image, "cam_e", deep)
    sub = sub_node.create_subscription(Image, "cam_e", print, deep, raw=True, callback_group=TakenElsewhere())
    received = Received()
    ready = [False]
    intake = _start(sub_node, [sub], received, lambda i: ready[0], depth=5)
    try:
        assert spin_until(executor, lambda: pub.get_subscription_count() > 0)
        msgs = [image_msg(np.full((8, 8, 3), k, np.uint8), stamp_sec=k + 1) for k in range(3)]
        for msg in msgs:
            pub.publish(msg)
        spin_until(executor, lambda: False, timeout=0.5)  # all three reach the history
        ready[0] = True
        intake.wake()
        assert spin_until(executor, lambda: received.count() >= 1, timeout=5.0)
        spin_until(executor, lambda: False, timeout=0.3)
        assert received.count() == 1
        assert _holds(received.frames[0][1], msgs[-1])
    finally:
        assert intake.stop(5.0)


def test_a_wake_after_stop_does_not_raise(nodes):
    """The inference thread may announce a freed slot while the node stops the intake."""
    _, sub_node, _ = nodes
    subs = _subscribe(sub_node, ["cam_f"])
    received = Received()
    intake = _start(sub_node, subs, received)
    assert intake.stop(5.0)
    intake.wake()
    assert not received.errors
