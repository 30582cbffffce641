"""References the embedding tests share (not a test module): the contract in NumPy, ONNX Runtime's
detections with their embeddings, synthetic frames letterboxed as the pipeline does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from yolov8_trt_ros.core.config import PostprocessConfig
from yolov8_trt_ros.core.postprocess import decode_candidates, nms_numpy
from yolov8_trt_ros.core.types import Letterbox

EMBEDDINGS_OUTPUT = "embeddings"


def numpy_anchor_embeddings(feats: list[np.ndarray]) -> np.ndarray:
    """The contract written out cell by cell: ``[B, A, D]``, float64 then float32."""
    dim = min(f.shape[1] for f in feats)
    rows = []
    for f in feats:
        b, c, h, w = f.shape
        cells = f.astype(np.float64).transpose(0, 2, 3, 1).reshape(b, h * w, c)
        rows.append(cells.reshape(b, h * w, dim, c // dim).mean(axis=-1))
    out = np.concatenate(rows, axis=1)
    norm = np.linalg.norm(out, axis=-1, keepdims=True)
    return (out / np.maximum(norm, 1e-12)).astype(np.float32)


def synthetic_batch(size: tuple[int, int], frames: int) -> tuple[np.ndarray, list[Letterbox]]:
    from yolov8_trt_ros.core.config import PreprocessConfig
    from yolov8_trt_ros.core.preprocess import CpuPreprocessor
    from yolov8_trt_ros.core.sources import iter_frames

    images = list(iter_frames("synthetic:0", synthetic_frames=frames))
    pre = CpuPreprocessor(PreprocessConfig(input_width=size[1], input_height=size[0]))
    tensor, lbs = pre(images, ["bgr8"] * len(images))
    return np.array(tensor, copy=True), lbs


def onnxruntime_detections(
    model: Path, images: np.ndarray, cfg: PostprocessConfig
) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], np.ndarray]:
    """ONNX Runtime CPU FP32: per image (boxes, classes, embeddings) of the kept detections
    (the NumPy rule, anchors tracked), and the per-anchor embeddings ``[B, D, A]``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    if EMBEDDINGS_OUTPUT not in names:
        pytest.skip(f"{model.name} has no '{EMBEDDINGS_OUTPUT}' output yet (outputs {names})")
    head_name = next(n for n in names if n != EMBEDDINGS_OUTPUT)
    head, emb = session.run([head_name, EMBEDDINGS_OUTPUT], {session.get_inputs()[0].name: images})
    result = []
    for b in range(len(images)):
        boxes, _scores, classes, order = decode_candidates(head[b], cfg.num_classes, cfg)
        keep = nms_numpy(
            boxes, None if cfg.class_agnostic else classes, cfg.iou_threshold, cfg.max_detections
        )
        result.append((boxes[keep], classes[keep], emb[b][:, order[keep]].T))
    return result, emb


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=-1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def numpy_branch_embeddings(feats: list[np.ndarray], branch: list) -> np.ndarray:
    """A learned branch written out as sums (``Conv 3x3 -> SiLU -> Conv 1x1`` per level, zero
    padding): ``[B, A, D]`` float32, rows L2-normalised; float64 inside."""
    rows = []
    for f, part in zip(feats, branch, strict=True):
        b, _, h, w = f.shape
        fp = np.pad(f.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
        taps = np.stack(
            [np.stack([fp[:, :, dy : dy + h, dx : dx + w] for dx in range(3)], 2) for dy in range(3)], 2
        )
        hidden = (
            np.einsum("kcij,bcijyx->bkyx", part.w1.astype(np.float64), taps) + part.b1[None, :, None, None]
        )
        hidden = hidden / (1.0 + np.exp(-hidden))  # SiLU
        out = np.einsum("dk,bkyx->byxd", part.w2[:, :, 0, 0].astype(np.float64), hidden) + part.b2
        rows.append(out.reshape(b, h * w, -1))
    out = np.concatenate(rows, axis=1)
    return (out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def random_branch(rng: np.random.Generator, channels: tuple[int, ...], hidden: int, dim: int) -> list:
    """A branch of random weights scaled so that activations stay of order one."""
    from yolov8_trt_ros.core.embeddings import BranchLevel

    def normal(*shape: int, fan_in: int) -> np.ndarray:
        return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)

    return [
        BranchLevel(
            normal(hidden, c, 3, 3, fan_in=9 * c),
            normal(hidden, fan_in=1) * 0.1,
            normal(dim, hidden, 1, 1, fan_in=hidden),
            normal(dim, fan_in=1) * 0.1,
        )
        for c in channels
    ]


def with_learned(
    model_path: Path, out_dir: Path, projection: np.ndarray | None = None, branch: list | None = None
) -> Path:
    """A copy of a model that has the ``embeddings`` output (and its ``.pt`` beside it, for the
    CUDA backend) whose output is rebuilt with the learned ``projection`` or ``branch``."""
    import shutil

    import onnx

    from yolov8_trt_ros.core.embeddings import add_embedding_output, strip_embeddings

    model = strip_embeddings(onnx.load(str(model_path)))
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / model_path.name
    out.write_bytes(add_embedding_output(model, projection, branch).SerializeToString())
    if model_path.with_suffix(".pt").is_file():
        shutil.copyfile(model_path.with_suffix(".pt"), out.with_suffix(".pt"))
    return out
