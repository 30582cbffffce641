"""Backend selection: ``auto`` order, fall-back on load failure, explicit choices, reasons."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from _yolo_models import yaml_onnx
from yolov8_trt_ros.core.backends import factory
from yolov8_trt_ros.core.backends.base import BackendError
from yolov8_trt_ros.core.backends.onnxruntime_backend import OnnxRuntimeBackend
from yolov8_trt_ros.core.config import EngineConfig, PostprocessConfig

POST = PostprocessConfig()


def _cfg(**kw) -> EngineConfig:
    return EngineConfig(model_path=str(yaml_onnx()), **kw)


def test_available_backends_reports_every_backend_with_reasons() -> None:
    available = factory.available_backends()
    assert set(available) == {"tensorrt", "cuda", "onnxruntime"}
    assert available["onnxruntime"] is None  # installed everywhere the tests run
    try:
        import tensorrt

        has_runtime = hasattr(tensorrt, "Builder")
    except ImportError:
        has_runtime = False
    if not has_runtime:  # absent, or only tensorrt-stubs' namespace folder (as on the dev machine)
        assert "tensorrt" in (available["tensorrt"] or "")
    if factory.cuda_device_count() == 0:
        assert available["tensorrt"] is not None and available["cuda"] is not None


def test_auto_takes_the_first_available_in_order(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setattr(
        factory,
        "available_backends",
        lambda: {"tensorrt": "no TensorRT here", "cuda": "no GPU here", "onnxruntime": None},
    )
    with caplog.at_level(logging.INFO, logger=factory.__name__):
        backend = factory.create_backend(_cfg(), POST)
    assert isinstance(backend, OnnxRuntimeBackend)
    assert "auto -> onnxruntime" in caplog.text
    assert "no TensorRT here" in caplog.text and "no GPU here" in caplog.text


def test_auto_falls_back_when_a_faster_backend_fails_to_load(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    tried: list[str] = []
    real_builder = factory._builder

    def builder(name: str):
        def build(engine: EngineConfig, post: PostprocessConfig, embeddings: bool):
            tried.append(name)
            if name != "onnxruntime":
                raise BackendError(f"{name} engine build failed")
            return real_builder(name)(engine, post, embeddings)

        return build

    monkeypatch.setattr(factory, "available_backends", lambda: dict.fromkeys(factory.AUTO_ORDER))
    monkeypatch.setattr(factory, "_builder", builder)
    with caplog.at_level(logging.INFO, logger=factory.__name__):
        backend = factory.create_backend(_cfg(), POST)
    assert tried == ["tensorrt", "cuda", "onnxruntime"]
    assert backend.info.name == "onnxruntime"
    assert "tensorrt engine build failed" in caplog.text


def test_auto_with_nothing_loadable_says_why(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="no backend can run this model") as err:
        factory.create_backend(EngineConfig(model_path=str(tmp_path / "missing.onnx")), POST)
    assert "not found" in str(err.value)


def test_explicit_backend_is_built_or_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = factory.create_backend(_cfg(backend="onnxruntime"), POST)
    assert backend.info.name == "onnxruntime"
    monkeypatch.setattr(
        factory,
        "available_backends",
        lambda: {"tensorrt": "tensorrt does not import", "cuda": None, "onnxruntime": None},
    )
    with pytest.raises(BackendError, match="tensorrt does not import"):
        factory.create_backend(_cfg(backend="tensorrt"), POST)
