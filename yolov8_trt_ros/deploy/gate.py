"""The health gate: a staged model runs through the real pipeline before it may become current.

Same code path as the node's configure (``Pipeline.create`` with the node's engine settings:
backend, precision, engine cache), then warm-up, then the smoke test on the bundle's reference
images. On a Jetson this is where the TensorRT engine for the new model is built, into the
node's engine cache (keyed by the ONNX's sha256, not its path), so the node's reload finds it
built and never builds while serving.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from yolov8_trt_ros.core.config import EngineConfig, PostprocessConfig, TrackerConfig
from yolov8_trt_ros.core.pipeline import Pipeline, PipelineConfig
from yolov8_trt_ros.core.types import Detections
from yolov8_trt_ros.deploy import smoke
from yolov8_trt_ros.deploy.manifest import CALIBRATION_NAME, MODEL_NAME, Manifest

LOG = logging.getLogger(__name__)
WARMUP_FRAMES = 3


class GateError(Exception):
    """The model failed the gate; ``stage`` says where (load, warm-up, smoke test)."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"{stage} failed: {message}")
        self.stage = stage


@dataclass
class GateReport:
    backend: str
    precision: str
    load_s: float
    smoke: smoke.SmokeResult
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        return f"{self.backend}/{self.precision} loaded in {self.load_s:.1f} s; smoke: {self.smoke.summary()}"


@dataclass
class NodeSettings:
    """What the node's configure would build: engine and postprocess stage configs.

    The postprocess config matters beyond the smoke test: with in-engine NMS (TensorRT,
    ``end2end_nms``) its thresholds are part of the engine's cache key, so the gate must build
    with the node's values for the node to find that engine.
    """

    engine: EngineConfig
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)


def _stage(cls: Any, values: dict[str, Any], overrides: dict[str, Any] | None = None) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    picked = {k: v for k, v in values.items() if k in names}
    picked.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return cls.from_mapping(picked)


def settings_from_params(path: Path | None, **engine_overrides: Any) -> NodeSettings:
    """The node's settings from its ROS parameter YAML (``node: ros__parameters: {...}``).

    Read as plain YAML so the installer needs no rclpy; the engine and postprocess stages'
    parameter names are their field names. ``engine_overrides`` (CLI flags) win.
    """
    values: dict[str, Any] = {}
    if path is not None:
        import yaml

        data = yaml.safe_load(path.read_text()) or {}
        for node in data.values():
            params = (node or {}).get("ros__parameters", {}) if isinstance(node, dict) else {}
            values.update(params)
    return NodeSettings(_stage(EngineConfig, values, engine_overrides), _stage(PostprocessConfig, values))


def _pipeline_config(model: Path, engine: EngineConfig, post: PostprocessConfig) -> PipelineConfig:
    cfg = PipelineConfig.default()
    changes: dict[str, Any] = {"model_path": str(model)}
    if (model.parent / CALIBRATION_NAME).is_file():  # a bundle's cache, beside its model
        changes["calibration_cache"] = str(model.parent / CALIBRATION_NAME)
    cfg.engine = engine.replace(**changes)
    cfg.postprocess = post
    cfg.tracker = TrackerConfig(enabled=False)
    return cfg


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise GateError("smoke test", f"cannot decode reference image {path.name}")
    return image


def detect(pipeline: Pipeline, images: Sequence[np.ndarray]) -> list[Detections]:
    return [pipeline.process([img], ["bgr8"])[0].detections for img in images]


def open_pipeline(model: Path, engine: EngineConfig, post: PostprocessConfig) -> Pipeline:
    """Load and warm up ``model``; raises :class:`GateError` naming the stage that failed."""
    try:
        pipeline = Pipeline.create(_pipeline_config(model, engine, post))
    except Exception as exc:
        raise GateError("load", f"{type(exc).__name__}: {exc}") from exc
    try:
        frame = np.full((480, 640, 3), 114, np.uint8)
        for _ in range(WARMUP_FRAMES):
            pipeline.process([frame], ["bgr8"])
    except Exception as exc:
        pipeline.close()
        raise GateError("warm-up", f"{type(exc).__name__}: {exc}") from exc
    return pipeline


def _above(d: Detections, threshold: float) -> Detections:
    return d.select(d.scores >= threshold)


def run_gate(release: Path, manifest: Manifest, node: NodeSettings | EngineConfig) -> GateReport:
    """Load, warm up and smoke-test the staged release; :class:`GateError` if any step fails.

    Built with the node's settings (the engine it will load); compared above the higher of the
    node's and the bundle's confidence thresholds (what the node would never report is not
    expected of it).
    """
    if isinstance(node, EngineConfig):
        node = NodeSettings(node)
    t0 = time.monotonic()
    pipeline = open_pipeline(release / MODEL_NAME, node.engine, node.postprocess)
    threshold = max(node.postprocess.conf_threshold, manifest.smoke.conf_threshold)
    load_s = time.monotonic() - t0
    try:
        info = pipeline.backend.info
        if info.num_classes != len(manifest.classes):
            raise GateError(
                "load", f"the model has {info.num_classes} classes, the bundle names {len(manifest.classes)}"
            )
        expected = smoke.load_expected(release / manifest.smoke.expected)
        unlisted = [e.file for e in expected if e.file not in manifest.files]
        if unlisted:
            raise GateError("smoke test", f"reference images not in the manifest: {unlisted[:3]}")
        try:
            got = detect(pipeline, [_read_image(release / e.file) for e in expected])
        except GateError:
            raise
        except Exception as exc:
            raise GateError("smoke test", f"{type(exc).__name__}: {exc}") from exc
        pairs = [
            (_above(e.detections, threshold), _above(g, threshold))
            for e, g in zip(expected, got, strict=True)
        ]
        result = smoke.compare(pairs, manifest.smoke)
        if not result.ok:
            spec = manifest.smoke
            raise GateError(
                "smoke test",
                f"{result.summary()}; needs recall >= {spec.min_recall}, precision >= {spec.min_precision}",
            )
        return GateReport(info.name, info.precision, load_s, result)
    finally:
        pipeline.close()


def record_expected(
    model: Path, images: Sequence[tuple[str, Path]], engine: EngineConfig, conf_threshold: float
) -> bytes:
    """Expected detections for a new bundle: what ``model`` gives on the reference images now.

    Run at release time on the producer's machine (ONNX Runtime FP32 by default), so the
    robot's gate checks that its backend and precision agree with the released reference.
    """
    pipeline = open_pipeline(model, engine, PostprocessConfig().replace(conf_threshold=conf_threshold))
    try:
        dets = detect(pipeline, [_read_image(p) for _, p in images])
    finally:
        pipeline.close()
    return smoke.to_json([(name, d) for (name, _), d in zip(images, dets, strict=True)]).encode()
