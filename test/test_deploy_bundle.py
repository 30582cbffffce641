"""OTA bundles without ROS: sign, verify, stage, gate, switch, roll back, and every refusal.

Real files, real keys (made here), the real gate (ONNX Runtime CPU on the test model). Each bad
bundle must leave ``current`` on the release installed before it, with an error naming why.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _deploy_bundles import (
    ENGINE,
    Kit,
    bad_bundles,
)

from yolov8_trt_ros.core.config import EngineConfig
from yolov8_trt_ros.deploy.gate import settings_from_params
from yolov8_trt_ros.deploy.installer import InstallError, install
from yolov8_trt_ros.deploy.manifest import MODEL_NAME
from yolov8_trt_ros.deploy.smoke import parse_expected
from yolov8_trt_ros.deploy.store import ModelStore, StoreError, rollback

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def kit(tmp_path_factory, detector_model) -> Kit:
    return Kit(tmp_path_factory.mktemp("bundles"), detector_model)


@pytest.fixture(scope="module")
def v1(kit) -> Path:
    return kit.make("v1", "1.0.0")


@pytest.fixture
def store(tmp_path, kit, v1) -> ModelStore:
    """A store with v1 installed and current."""
    s = ModelStore(tmp_path / "store")
    install(v1, s, kit.public, ENGINE)
    assert s.current is not None and s.current.startswith("1.0.0-")
    return s


def test_good_bundle_installs_switches_and_rolls_back(store, kit):
    v1 = store.current
    v2_bundle = kit.make("v2", "2.0.0")
    steps: list[str] = []
    result = install(v2_bundle, store, kit.public, ENGINE, progress=lambda step, msg: steps.append(step))
    assert steps == ["verify", "stage", "gate", "switch"]
    assert result.gate is not None and result.gate.smoke.recall == 1.0
    assert store.current == result.release and store.previous == v1
    assert (store.current_model).resolve() == (store.releases / result.release / MODEL_NAME)
    assert store.current_model.read_bytes() == kit.model.read_bytes()
    assert not list(store.root.glob(".staging-*"))
    assert rollback(store) == (result.release, v1)
    assert store.current == v1 and store.previous is None  # v1 replaced nothing
    with pytest.raises(StoreError, match="no previous release"):
        rollback(store)
    events = [json.loads(line)["event"] for line in (store.root / "history.jsonl").read_text().splitlines()]
    assert events == ["installed", "installed", "rollback"]


def test_bad_bundles_leave_the_previous_release_current(store, kit, v1, tmp_path):
    before = store.current
    for name, (bundle_path, step, words) in bad_bundles(kit, tmp_path).items():
        with pytest.raises(InstallError) as err:
            install(bundle_path, store, kit.public, ENGINE)
        assert err.value.step == step, f"{name}: {err.value}"
        assert words in str(err.value), f"{name}: {err.value}"
        assert store.current == before, name
        assert store.current_model.read_bytes() == kit.model.read_bytes(), name
        assert not list(store.root.glob(".staging-*")), f"{name} left its staging dir"
    failures = [json.loads(x) for x in (store.root / "history.jsonl").read_text().splitlines()[1:]]
    assert [f["event"] for f in failures] == ["install_failed"] * 7


def test_cli_reports_one_line_errors_and_status(store, kit, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    bad = kit.make("cli_other_key", "4.0.0", key=kit.other_key())
    run = subprocess.run(
        [sys.executable, "-m", "yolov8_trt_ros.deploy", "verify", str(bad), "--public-key", str(kit.public)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 1
    assert run.stderr.strip().startswith("error: bad signature") and run.stderr.count("\n") == 1
    status = subprocess.run(
        [sys.executable, "-m", "yolov8_trt_ros.deploy", "status", "--store", str(store.root), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert status.returncode == 0 and json.loads(status.stdout)["current"] == store.current


KILLER = """
import sys, time
from pathlib import Path
from yolov8_trt_ros.core.config import EngineConfig
from yolov8_trt_ros.deploy.installer import install
from yolov8_trt_ros.deploy.store import ModelStore, StoreError

def progress(step, msg):
    print(step, flush=True)
    if step == sys.argv[4]:
        time.sleep(600)  # killed here by the test

install(Path(sys.argv[1]), ModelStore(Path(sys.argv[2])), Path(sys.argv[3]),
        EngineConfig(backend="onnxruntime", precision="fp32", num_threads=1), progress=progress)
"""


@pytest.mark.parametrize("kill_after", ["stage", "gate"])
def test_install_killed_before_the_switch_changes_nothing(store, kit, tmp_path, kill_after):
    before = store.current
    v5 = kit.make("v5", "5.0.0")
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLER, str(v5), str(store.root), str(kit.public), kill_after],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    end = time.monotonic() + 120
    seen = []
    while time.monotonic() < end and kill_after not in seen:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line.strip())
    assert kill_after in seen, f"installer never reached {kill_after}: {seen}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert store.current == before
    assert store.current_model.read_bytes() == kit.model.read_bytes()
    assert list(store.root.glob(".staging-*")), "the killed install should have left its staging dir"
    # The next install cleans up after the killed one and succeeds (the lock died with it).
    steps: list[tuple[str, str]] = []
    result = install(v5, store, kit.public, ENGINE, progress=lambda s, m: steps.append((s, m)))
    assert steps[0][0] == "clean" and ".staging-" in steps[0][1]
    assert store.current == result.release != before
    assert not list(store.root.glob(".staging-*"))


def test_gate_builds_with_the_node_settings_and_compares_above_its_threshold(store, kit, tmp_path):
    """The node's params YAML decides backend and NMS thresholds (TensorRT's engine key holds them);
    expected boxes below the node's confidence threshold are not asked of it."""
    params = tmp_path / "params.yaml"
    params.write_text(
        "yolov8_trt_node:\n  ros__parameters:\n    backend: onnxruntime\n    precision: fp32\n"
        "    num_threads: 1\n    conf_threshold: 0.9\n    iou_threshold: 0.5\n    debug_image: false\n"
    )
    node = settings_from_params(params)
    assert (node.engine.backend, node.engine.num_threads) == ("onnxruntime", 1)
    assert (node.postprocess.conf_threshold, node.postprocess.iou_threshold) == (0.9, 0.5)
    recorded = sum(len(e.detections) for e in parse_expected(kit.expected))
    above = sum(int((e.detections.scores >= 0.9).sum()) for e in parse_expected(kit.expected))
    assert 0 < above < recorded, "the reference images need boxes on both sides of 0.9"
    result = install(kit.make("v6", "6.0.0"), store, kit.public, node)
    assert result.gate is not None and result.gate.smoke.expected == above
    assert result.gate.smoke.recall >= 0.9


def test_int8_bundle_gates_the_qdq_model_against_fp32_expectations(store, kit):
    """A robot running INT8 gates the bundle's Q/DQ model (ONNX Runtime picks model.int8.onnx)
    against the expectations recorded with FP32: quantisation must not change what is seen."""
    int8 = kit.model.with_name(kit.model.stem + ".int8.onnx")
    if not int8.is_file():
        pytest.skip(f"{int8.name} is not in the checkout")
    node = EngineConfig(backend="onnxruntime", precision="int8", num_threads=1)
    result = install(kit.make("v7", "7.0.0", int8_model=int8), store, kit.public, node)
    assert result.gate is not None and result.gate.precision == "int8", result.gate
    assert result.gate.smoke.recall >= 0.9 and result.gate.smoke.precision >= 0.8
    installed = store.releases / result.release
    assert (installed / "model.int8.onnx").read_bytes() == int8.read_bytes()
    assert store.manifest(result.release).has_int8


def test_cli_encrypted_key_round_trip(kit, tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "BUNDLE_PASS": "correct horse",
    }
    expected = tmp_path / "expected.json"
    expected.write_bytes(kit.expected)
    refs = [str(p) for p in kit.reference.values()]

    def cli(*args: str, passphrase: bool = True) -> subprocess.CompletedProcess[str]:
        extra = ["--passphrase-env", "BUNDLE_PASS"] if passphrase else []
        return subprocess.run(
            [sys.executable, "-m", "yolov8_trt_ros.deploy", *args, *extra],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    keys = tmp_path / "keys"
    made = cli("keygen", "--private", str(keys / "k.pem"), "--public", str(keys / "k.pub"))
    assert made.returncode == 0, made.stderr
    assert (keys / "k.pem").read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert (keys / "k.pem").stat().st_mode & 0o777 == 0o600
    create = ["create", "--out", str(tmp_path / "b.tar"), "--name", "synth", "--version", "1.2.3"]
    create += ["--model", str(kit.model), "--expected", str(expected), "--key", str(keys / "k.pem")]
    create += ["--reference", *refs]
    refused = cli(*create, passphrase=False)
    assert refused.returncode == 1 and refused.stderr.startswith("error: ") and "encrypted" in refused.stderr
    signed = cli(*create)
    assert signed.returncode == 0, signed.stderr
    verified = cli("verify", str(tmp_path / "b.tar"), "--public-key", str(keys / "k.pub"), passphrase=False)
    assert verified.returncode == 0 and verified.stdout.startswith("ok: synth 1.2.3-"), verified.stderr
