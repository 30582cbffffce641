"""Markers that skip, with a reason, tests whose hardware or software is missing."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reasons = {
        "gpu": None if _cuda_available() else "no CUDA GPU on this machine",
        "tensorrt": None if _have("tensorrt") and _cuda_available() else "TensorRT is not installed",
        "launch_test": None if _have("launch_pytest") else "ROS 2 launch/launch_pytest is not installed",
        "ros": None if _have("rclpy") else "rclpy is not importable (run scripts/setup.sh)",
    }
    for item in items:
        for marker, reason in reasons.items():
            if reason and marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def assets_dir() -> Path:
    """ultralytics' bundled sample photos (bus.jpg, zidane.jpg)."""
    from ultralytics.utils import ASSETS

    return Path(ASSETS)


os.environ.setdefault("YOLO_OFFLINE", "1")
# Each test session gets its own DDS domain and stays on this host, so concurrent runs (and
# the processes a test starts, which inherit this environment) only ever see each other.
os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 200)
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")

TEST_MODEL = REPO / "models" / "test" / "yolov8n_synth.onnx"


@pytest.fixture(scope="session")
def rclpy_session():
    """rclpy initialised once for the test process."""
    import rclpy

    rclpy.init()
    yield
    rclpy.try_shutdown()


@pytest.fixture(scope="session")
def detector_model() -> Path:
    """The ONNX the node tests run: the trained 10-class test model, else a seeded yolov8n.yaml."""
    if TEST_MODEL.is_file():
        return TEST_MODEL
    from _yolo_models import yaml_onnx

    return yaml_onnx(320)
