"""The x86 image, run with podman: the node inside answers images published from outside it.

Needs podman and the image built (``deploy/README.md``, section 7: about 15 minutes on the
2-core dev machine, so the test does not build it); skips with the reason otherwise. The model
comes as an installed bundle in a store mounted into the container, as on a robot.

``ROS_AUTOMATIC_DISCOVERY_RANGE`` is not passed in: with ``LOCALHOST`` the container's non-root
node discovers its peers but receives no data (seen with Kilted's wheels, podman, host network;
as root it works). The image's Fast DDS profile keeps it on the loopback interface instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from _deploy_bundles import ENGINE, Kit

from _ros import Probe, image_msg, read_bgr
from yolov8_trt_ros.deploy.installer import install
from yolov8_trt_ros.deploy.store import ModelStore

pytestmark = [pytest.mark.ros, pytest.mark.slow]
IMAGE = os.environ.get("YOLOV8_TEST_IMAGE", "localhost/yolov8-trt-ros:x86")
PODMAN = shutil.which("podman")
EXTRA = os.environ.get("YOLOV8_TEST_PODMAN_ARGS", "").split()


# The three podman settings this kind of machine needs (../shared/docs/containers.md): runc,
# cgroupfs and no default ulimits; a caller's own CONTAINERS_CONF wins.
CONTAINERS_CONF = (
    '[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\n'
)


def _podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if "CONTAINERS_CONF" not in env:
        conf = Path(tempfile.gettempdir()) / "yolov8_trt_ros_containers.conf"
        conf.write_text(CONTAINERS_CONF)
        env["CONTAINERS_CONF"] = str(conf)
    return subprocess.run(
        [PODMAN or "podman", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="module")
def image() -> str:
    if PODMAN is None:
        pytest.skip("podman is not installed (deploy/README.md, section 7)")
    if _podman("image", "exists", IMAGE).returncode != 0:
        pytest.skip(f"image {IMAGE} is not built (deploy/README.md, section 7)")
    return IMAGE


def test_node_in_container_answers_host_images(image, rclpy_session, tmp_path, detector_model, assets_dir):
    kit = Kit(tmp_path / "kit", detector_model)
    store = ModelStore(tmp_path / "data" / "models")
    install(kit.make("v1", "1.0.0"), store, kit.public, ENGINE)
    os.chmod(tmp_path / "data", 0o755)
    name = f"yolov8_ct_{os.getpid()}"
    node = "ct_detector"
    run = _podman(
        "run", "-d", "--rm", "--name", name, "--network", "host", "--ipc", "host", *EXTRA,
        "-e", f"ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']}",
        "-e", f"NODE_NAME={node}",
        "-v", f"{tmp_path / 'data'}:/var/lib/yolov8_trt_ros:ro",
        image,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    probe = Probe(node, name=f"{node}_probe")
    try:
        probe.wait_for_node(timeout=120)
        probe.wait_subscribed(timeout=120)
        answer = probe.send_and_wait(image_msg(read_bgr(assets_dir / "bus.jpg"), stamp_sec=7), timeout=60)
        assert answer.header.stamp.sec == 7 and answer.header.frame_id == "cam"
        health = _podman("exec", name, "yolov8-entrypoint", "health", "--no-jetson", timeout=90)
        assert health.returncode == 0, health.stdout + health.stderr
        assert health.stdout.startswith("ok: active"), health.stdout
        logs = _podman("logs", name)
        assert "configured: backend=onnxruntime" in logs.stdout + logs.stderr, logs.stderr[-2000:]
    finally:
        probe.close()
        stop = _podman("stop", "-t", "20", name, timeout=60)
        assert stop.returncode == 0, stop.stderr
        time.sleep(0.5)
