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


def with_projection(model_path: Path, out_dir: Path, projection: np.ndarray) -> Path:
    """A copy of a model that has the ``embeddings`` output (and its ``.pt`` beside it, for the
    CUDA backend) whose output is rebuilt with the learned ``projection``."""
    import shutil

    import onnx

    from yolov8_trt_ros.core.embeddings import META_EMBEDDINGS, add_embedding_output

    model = onnx.load(str(model_path))
    graph = model.graph
    keep_nodes = [n for n in graph.node if not n.name.startswith("/embeddings/")]
    keep_inits = [i for i in graph.initializer if not i.name.startswith("/embeddings/")]
    keep_outputs = [o for o in graph.output if o.name != EMBEDDINGS_OUTPUT]
    keep_meta = [(p.key, p.value) for p in model.metadata_props if p.key != META_EMBEDDINGS]
    for field, kept in (
        (graph.node, keep_nodes),
        (graph.initializer, keep_inits),
        (graph.output, keep_outputs),
    ):
        del field[:]
        field.extend(kept)
    del model.metadata_props[:]
    for key, value in keep_meta:
        model.metadata_props.add(key=key, value=value)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / model_path.name
    out.write_bytes(add_embedding_output(model, projection).SerializeToString())
    if model_path.with_suffix(".pt").is_file():
        shutil.copyfile(model_path.with_suffix(".pt"), out.with_suffix(".pt"))
    return out
