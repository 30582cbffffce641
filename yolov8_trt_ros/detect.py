"""First check on a new machine: run the detector on images, a video or a camera, without ROS.

    python -m yolov8_trt_ros.detect --model models/yolov8n.onnx --source samples
    python -m yolov8_trt_ros.detect --model models/yolov8n.onnx --source 0 --max-frames 100

Why it exists: before bringing up ROS, a user wants to know that the engine loads on the chosen
backend, that its boxes land on the objects and how long each stage takes. It runs the node's
own :class:`~yolov8_trt_ros.core.pipeline.Pipeline` (tracking off), class names
(:func:`~yolov8_trt_ros.core.labels.resolve_class_names`), frame sources
(:mod:`yolov8_trt_ros.core.sources`) and drawing (:mod:`yolov8_trt_ros.core.drawing`), so what
it shows is what the node will publish.

SOURCE is an image, a folder of images, a video file, ``samples`` (ultralytics' bus.jpg and
zidane.jpg), ``synthetic[:seed]`` or a live camera/stream (``0``, ``/dev/video0``,
``rtsp://...``, a GStreamer pipeline). Written into OUTPUT: annotated images under the input
file names, or ``<name>.mp4`` for a video or camera, and ``detections.json`` (boxes xyxy in
source pixels). Bad input (no model, an unreadable source, an empty folder) is one line on
stderr and exit code 2; an unreadable image inside a folder is reported and skipped.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import sys
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from yolov8_trt_ros.core.backends.base import BackendError
from yolov8_trt_ros.core.config import ConfigError, EngineConfig, TrackerConfig
from yolov8_trt_ros.core.drawing import annotate
from yolov8_trt_ros.core.labels import class_name, resolve_class_names
from yolov8_trt_ros.core.live_capture import is_live_source
from yolov8_trt_ros.core.pipeline import Pipeline, PipelineConfig
from yolov8_trt_ros.core.sources import IMAGE_SUFFIXES, SourceError, image_files, iter_frames
from yolov8_trt_ros.core.types import Detections

#: The stages a user compares between backends; the tracker is off here.
TIMED_STAGES = ("preprocess", "inference", "postprocess")
#: Frame rate written for sources that do not say theirs (cameras, synthetic scenes).
DEFAULT_FPS = 30.0


class InputError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


@dataclass
class Frame:
    """One frame to run: its image, where it came from, and where its picture goes (images)."""

    image: np.ndarray | None  # None: the image could not be read (``error`` says why)
    name: str
    index: int
    out_name: str | None = None
    error: str = ""


@dataclass
class Plan:
    """The frames of a source and how the annotated result is written."""

    frames: Generator[Frame, None, None]
    video: str | None = None  # file name of the annotated .mp4; None: one image per frame
    fps: float = DEFAULT_FPS
    skipped: list[dict[str, str]] = field(default_factory=list)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m yolov8_trt_ros.detect",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--model", required=True, help="ONNX model (TensorRT builds and caches its engine)")
    ap.add_argument("--source", required=True, help="image, folder, video, samples, synthetic or camera")
    ap.add_argument("--backend", default="auto", choices=["auto", "tensorrt", "cuda", "onnxruntime"])
    ap.add_argument("--precision", default="fp16", choices=["fp16", "int8", "fp32"])
    ap.add_argument("--conf", type=float, default=0.25, help="confidence threshold")
    ap.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold")
    ap.add_argument("--labels", default="", help="labels file overriding the model's class names")
    ap.add_argument("--output", type=Path, default=Path("out/detect"), help="output folder")
    ap.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0: all)")
    ap.add_argument("--show-timings", action="store_true", help="print each frame's stage times")
    ap.add_argument(
        "--plugin-library",
        action="append",
        default=[],
        help="TensorRT plugin library (.so) of a model's custom layers; repeatable",
    )
    return ap.parse_args(argv)


def _image_plan(files: list[Path]) -> Plan:
    """Each file decoded by ``iter_frames`` on its own, so one corrupt image fails only itself."""

    def frames() -> Generator[Frame, None, None]:
        for index, path in enumerate(files):
            try:
                image = next(iter_frames(str(path)))
            except SourceError as exc:
                yield Frame(None, path.name, index, error=str(exc))
                continue
            yield Frame(image, path.name, index, out_name=path.name)

    return Plan(frames())


def _stream_plan(source: str, name: str, fps: float) -> Plan:
    """Video, camera or synthetic frames, read lazily (a camera is opened here, after the model)."""
    frames = (Frame(image, name, i) for i, image in enumerate(iter_frames(source)))
    stem = Path(name).stem if Path(name).suffix else name
    return Plan(frames, video=f"{stem}.mp4", fps=fps)


def _check_source(source: str, output: Path) -> None:
    """Fail before the model loads (an engine build may take minutes) on a source that cannot work.

    Also refuses an ``--output`` where the annotated copy would overwrite the source itself.
    """
    if is_live_source(source) or source.startswith("synthetic") or source == "samples":
        return
    path = Path(source).expanduser()
    if not path.exists():
        raise InputError(f"source {source!r} does not exist")
    if path.is_dir():
        image_files(path)  # SourceError where the folder holds none
        if path.resolve() == output.resolve():
            raise InputError(f"--output {output} is the source folder: its images would be overwritten")
        return
    is_image = path.suffix.lower() in IMAGE_SUFFIXES
    target = output / (path.name if is_image else f"{path.stem}.mp4")
    if target.resolve() == path.resolve():
        raise InputError(f"--output {output} holds the source {path.name}: it would be overwritten")


def _plan(source: str) -> Plan:
    """How to read ``source``: images keep their names, everything else becomes one video."""
    if source == "samples":
        from ultralytics.utils import ASSETS

        source = str(ASSETS)
    if is_live_source(source):
        return _stream_plan(source, "camera", DEFAULT_FPS)
    if source.startswith("synthetic"):
        return _stream_plan(source, source.replace(":", "_"), DEFAULT_FPS)
    path = Path(source).expanduser()
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return _image_plan(image_files(path))
    probe = cv2.VideoCapture(str(path))  # only the frame rate; iter_frames reads the frames
    fps = probe.get(cv2.CAP_PROP_FPS) if probe.isOpened() else 0.0
    probe.release()
    return _stream_plan(source, path.name, fps if 0 < fps < 1000 else DEFAULT_FPS)


def _detections_json(dets: Detections, names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {
            "box_xyxy": [round(v, 4) for v in box],
            "score": round(score, 5),
            "class_id": cls,
            "class_name": class_name(cls, names),
        }
        for box, score, cls in zip(
            dets.boxes.tolist(), dets.scores.tolist(), dets.class_ids.tolist(), strict=True
        )
    ]


class _VideoOut:
    """The annotated stream as mp4 (``mp4v``, as the demo's recorder), sized by its first frame."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] = (0, 0)

    def write(self, canvas: np.ndarray) -> None:
        size = (canvas.shape[1], canvas.shape[0])
        if self._writer is None:
            self._size = size
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*"mp4v"), self.fps, size)
            if not self._writer.isOpened():
                raise InputError(f"cannot write video {self.path}")
        elif size != self._size:  # a stream that came back at another resolution
            canvas = cv2.resize(canvas, self._size)
        self._writer.write(canvas)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


def _stage_line(pipeline: Pipeline) -> str:
    parts = []
    for stage in TIMED_STAGES:
        samples = pipeline.profiler.samples(stage)
        if samples.size:
            parts.append(f"{stage} {samples[-1]:.1f} ms")
    return ", ".join(parts)


def _summary(pipeline: Pipeline) -> str:
    """Per-stage p50/p99/mean; the first frame includes warm-up, which the p50 leaves out."""
    stats = pipeline.profiler.stats()
    lines = [f"{'stage':<12}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'n':>6}"]
    for stage in TIMED_STAGES:
        st = stats.get(stage)
        if st is not None:
            lines.append(f"{stage:<12}{st.p50_ms:9.2f}{st.p99_ms:9.2f}{st.mean_ms:9.2f}{st.count:6d}")
    lines.append(f"throughput: {pipeline.profiler.fps():.1f} FPS (reading and writing included)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Load, detect, write; raises InputError (and the core's errors) for bad input."""
    if not Path(args.model).expanduser().is_file():
        raise InputError(f"model {args.model} does not exist")
    if args.max_frames < 0:
        raise InputError("--max-frames must be >= 0")
    _check_source(args.source, args.output)
    cfg = PipelineConfig.default()
    cfg.engine = EngineConfig.from_mapping(
        {
            "backend": args.backend,
            "model_path": str(Path(args.model).expanduser()),
            "precision": args.precision,
            "plugin_libraries": args.plugin_library,
        }
    )
    cfg.postprocess = cfg.postprocess.replace(conf_threshold=args.conf, iou_threshold=args.iou)
    cfg.tracker = TrackerConfig(enabled=False)
    pipeline = Pipeline.create(cfg, embeddings=False)
    try:
        info = pipeline.backend.info
        names = resolve_class_names(pipeline.class_names, info.num_classes, args.labels)
        print(f"backend: {info.name} {info.precision} on {info.device} ({info.detail})")
        plan = _plan(args.source)
        return _detect(pipeline, plan, names, args)
    finally:
        pipeline.close()


def _detect(pipeline: Pipeline, plan: Plan, names: tuple[str, ...], args: argparse.Namespace) -> int:
    out: Path = args.output
    out.mkdir(parents=True, exist_ok=True)
    video = _VideoOut(out / plan.video, plan.fps) if plan.video else None
    records: list[dict[str, Any]] = []
    frames: Iterator[Frame] = plan.frames
    if video is not None and args.max_frames:
        frames = itertools.islice(frames, args.max_frames)
    if video is not None and is_live_source(args.source):
        print("reading the camera; Ctrl-C stops", file=sys.stderr)
    try:
        for frame in frames:
            if frame.image is None:
                print(f"skipped {frame.name}: {frame.error}", file=sys.stderr)
                plan.skipped.append({"source": frame.name, "error": frame.error})
                continue
            (result,) = pipeline.process([frame.image], ["bgr8"])
            pipeline.profiler.frame_done()
            dets = result.detections
            canvas = annotate(frame.image, "bgr8", dets, None, names)
            if video is not None:
                video.write(canvas)
            elif frame.out_name is not None and not cv2.imwrite(str(out / frame.out_name), canvas):
                raise InputError(f"cannot write {out / frame.out_name}")
            records.append(
                {"source": frame.name, "index": frame.index, "detections": _detections_json(dets, names)}
            )
            if args.show_timings:
                print(f"{frame.name}[{frame.index}]: {len(dets.boxes)} detections; {_stage_line(pipeline)}")
            if video is None and args.max_frames and len(records) >= args.max_frames:
                break
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        plan.frames.close()  # a camera stops now, not when the generator is collected
        if video is not None:
            video.close()
    if not records:
        detail = f" ({len(plan.skipped)} unreadable)" if plan.skipped else ""
        raise InputError(f"source {args.source!r}: no frame could be processed{detail}")
    report = {
        "model": str(args.model),
        "backend": pipeline.backend.info.name,
        "precision": pipeline.backend.info.precision,
        "source": args.source,
        "class_names": list(names),
        "frames": records,
        "skipped": plan.skipped,
    }
    (out / "detections.json").write_text(json.dumps(report, indent=1) + "\n")
    total = sum(len(r["detections"]) for r in records)
    written = f"{video.path} ({video.frames} frames)" if video else f"{len(records)} images"
    print(f"{len(records)} frames, {total} detections -> {written}, {out / 'detections.json'}")
    if plan.skipped:
        print(f"skipped {len(plan.skipped)} unreadable image(s)", file=sys.stderr)
    print(_summary(pipeline))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console entry point: 0 on success, 2 with one line on stderr for bad input."""
    os.environ.setdefault("YOLO_OFFLINE", "1")  # ``samples`` imports ultralytics: no network checks
    # The project's INFO lines say which backend ``auto`` chose and why the faster ones were passed over.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("yolov8_trt_ros").setLevel(logging.INFO)
    args = _parse(argv)
    try:
        return run(args)
    except (InputError, SourceError, ConfigError, BackendError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
