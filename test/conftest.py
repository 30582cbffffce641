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
        "launch": None if _have("launch_pytest") else "ROS 2 launch/launch_pytest is not installed",
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
