"""OTA updates seen from a running detector (its own process, real DDS): the node serves through
every refused bundle, reloads a good one through its lifecycle, and rolls itself back when a
release that skipped the gate fails to configure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _deploy_bundles import ENGINE, Kit, bad_bundles, foreign_onnx
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from _ros import image_msg, node_and_probe, read_bgr, spin_until
from yolov8_trt_ros.deploy.installer import InstallError, install
from yolov8_trt_ros.deploy.store import ModelStore

pytestmark = [pytest.mark.ros, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]
LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "yolov8_trt_ros.deploy", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


def test_node_serves_through_bad_bundles_reloads_good_ones_and_rolls_back(
    rclpy_session, tmp_path, detector_model, assets_dir
):
    kit = Kit(tmp_path / "kit", detector_model)
    store = ModelStore(tmp_path / "store")  # empty: the robot's first model comes over the air
    frame = read_bgr(assets_dir / "bus.jpg")
    params = {
        "backend": "onnxruntime",
        "num_threads": 1,
        "autostart": True,
        "model_store": str(store.root),
        "model_watch_period": 0.3,
        "diagnostics_period": 0.5,
    }
    with node_and_probe("ota_detector", params, tmp_path) as (proc, probe):
        releases: list[dict] = []
        probe.node.create_subscription(
            String, "/ota_detector/model_release", lambda m: releases.append(json.loads(m.data)), LATCHED
        )

        def last_release(status: str, release: str, timeout: float = 60.0) -> dict:
            ok = spin_until(
                probe.executor,
                lambda: (
                    bool(releases) and (releases[-1]["status"], releases[-1]["release"]) == (status, release)
                ),
                timeout,
            )
            assert ok, f"expected {status} {release}, got {releases[-3:]}\n{proc.log()[-3000:]}"
            return releases[-1]

        # No model yet: autostart's configure fails, the node waits unconfigured for a release.
        assert spin_until(probe.executor, lambda: "configure failed" in proc.log(), 60), proc.log()
        assert probe.state() == "unconfigured"
        v1 = install(kit.make("v1", "1.0.0"), store, kit.public, ENGINE).release
        assert last_release("loaded", v1)["version"] == "1.0.0"
        assert probe.state() == "active"
        probe.wait_subscribed()
        first = probe.send_and_wait(image_msg(frame, stamp_sec=1))
        assert len(first.detections) > 0

        # Every refused bundle: the installer says why, the node never notices and keeps serving v1.
        for name, (bundle_path, _step, words) in bad_bundles(kit, tmp_path).items():
            with pytest.raises(InstallError, match=words):
                install(bundle_path, store, kit.public, ENGINE)
            assert store.current == v1, name
        probe.spin(1.0)  # more than three watch periods
        assert releases[-1]["release"] == v1 and len(releases) == 2  # "empty store", then v1
        again = probe.send_and_wait(image_msg(frame, stamp_sec=2))
        assert len(again.detections) == len(first.detections)
        assert proc.log().count("configured: backend=") == 1, "no reload may have happened"

        # A good bundle through the CLI: the node reloads it through its lifecycle and serves it.
        run = _cli("install", str(kit.make("v2", "2.0.0")), "--store", str(store.root), "--public-key",
                   str(kit.public), "--backend", "onnxruntime", "--precision", "fp32")  # fmt: skip
        assert run.returncode == 0, run.stderr
        v2 = store.current
        assert v2 is not None and v2.startswith("2.0.0-") and store.previous == v1
        assert last_release("loaded", v2)["version"] == "2.0.0"
        assert probe.state() == "active"
        served = probe.send_and_wait(image_msg(frame, stamp_sec=3))
        assert len(served.detections) == len(first.detections)
        assert proc.log().count("configured: backend=") == 2

        # A release that skipped the gate and cannot configure: the node rolls back to v2, stays active.
        bad = kit.make("v3", "3.0.0", model=foreign_onnx(tmp_path / "foreign.onnx"))
        run = _cli(
            "install", str(bad), "--store", str(store.root), "--public-key", str(kit.public), "--no-gate"
        )
        assert run.returncode == 0 and "SKIPPED" in run.stdout, run.stderr
        rolled = last_release("rolled back", v2)
        assert store.current == v2 and store.previous == v1 and probe.state() == "active"
        v3 = next(r for r in store.status().releases if r.startswith("3.0.0-"))
        assert v3 in rolled["error"] and "node reload failed" in (store.rejected(v3) or "")
        assert "configure failed" in proc.log()
        assert probe.send_and_wait(image_msg(frame, stamp_sec=4)).detections
        # The rejected release is refused from now on, unless forced.
        with pytest.raises(InstallError, match="was rejected on this robot"):
            install(bad, store, kit.public, ENGINE, gate=False)
        assert store.current == v2

        # The operator's rollback: the node follows the store back to v1.
        run = _cli("rollback", "--store", str(store.root))
        assert run.returncode == 0, run.stderr
        assert store.current == v1
        last_release("loaded", v1)
        assert probe.send_and_wait(image_msg(frame, stamp_sec=5)).detections
