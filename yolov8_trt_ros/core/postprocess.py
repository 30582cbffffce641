"""Decode the YOLOv8 head, NMS, and map boxes back to source pixels.

Every backend follows the one rule stated on :class:`PostprocessConfig`: candidates with
``score >= conf_threshold`` (inclusive), at most ``pre_nms_top_k`` of them by score, greedy NMS
that suppresses a box whose IoU with a kept, better box of the same class (any class when
``class_agnostic``) is ``> iou_threshold`` (strict), equal scores ordered by lower anchor
index, then the best ``max_detections``.

Why not ``cv2.dnn.NMSBoxes``: it takes boxes as integer-rounded ``Rect``/float ``Rect2d``
in xywh, applies its score threshold with ``>`` rather than ``>=``, and orders equal scores by
its own (unstable) sort, so it cannot promise the rule above; it also has no class-wise mode
without a per-class loop. :func:`nms_numpy` is a blocked greedy NMS (one block of candidates
per step, exact, see there).

IoU is computed in float64 from the float32 boxes on both the NumPy and the torch path, and
both thresholds are compared as float32 values, as the tensors hold them: scores are float32,
and the IoU threshold is rounded to float32 first because torchvision's CUDA kernel (like
TensorRT's NMS plugins) receives it as a C ``float``. So ``iou_threshold=0.45`` means
``IoU > 0.449999988``: an IoU of exactly 9/20 is suppressed, on every path alike.

Embeddings (models with an appearance output, see ``core/embeddings.py``) ride along: the
decode carries each candidate's anchor index through the sort and the NMS, and a kept
detection gets the embedding of the anchor it came from (``Detections.embeddings``, row by
row with the boxes). Without embeddings nothing else changes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from yolov8_trt_ros.core.config import PostprocessConfig
from yolov8_trt_ros.core.types import Detections, EngineOutput, Letterbox

if TYPE_CHECKING:
    import torch


def _check_raw_shape(shape: Sequence[int], batch: int, cfg: PostprocessConfig) -> int:
    """Validate ``[B, 4 + C (+ extra), A]`` against the letterboxes and config; return C."""
    if len(shape) != 3:
        raise ValueError(f"raw head output must be [B, 4+C, A], got shape {tuple(shape)}")
    if shape[0] != batch:
        raise ValueError(f"raw head output has batch {shape[0]} but {batch} letterboxes were given")
    if shape[1] < 4 + cfg.num_classes:
        raise ValueError(
            f"raw head output has {shape[1]} channels, fewer than 4 + num_classes = {4 + cfg.num_classes}"
        )
    return cfg.num_classes


def _check_embeddings_shape(shape: Sequence[int], raw_shape: Sequence[int]) -> None:
    """Per-anchor embeddings ``[B, D, A]`` must match the head's batch and anchors."""
    if len(shape) != 3 or shape[0] != raw_shape[0] or shape[2] != raw_shape[2]:
        raise ValueError(
            f"embeddings of shape {tuple(shape)} do not match the head {tuple(raw_shape)}: expected "
            f"[{raw_shape[0]}, D, {raw_shape[2]}]"
        )


def iou_float32(iou_threshold: float) -> float:
    """The IoU threshold as every NMS path compares it: rounded to float32 (see module doc)."""
    return float(np.float32(iou_threshold))


#: Candidates :func:`nms_numpy` takes per step (see there).
NMS_BLOCK = 64


def nms_numpy(
    boxes: np.ndarray, class_ids: np.ndarray | None, iou_threshold: float, max_keep: int
) -> np.ndarray:
    """Greedy NMS over candidates already sorted best first; returns kept positions, in order.

    ``class_ids=None`` is class-agnostic. A candidate is dropped when its IoU with a kept box
    of the same class is strictly greater than ``iou_threshold`` (as float32). The per-class
    rule is applied with a class mask rather than the coordinate-offset trick, which would
    round the boxes.

    Blocked, so that NumPy is called per block of :data:`NMS_BLOCK` candidates rather than per
    kept box (the old loop made ~12 small NumPy calls per kept box, against all candidates
    left): each block is first checked against every box kept so far in one
    ``[kept, block]`` IoU matrix, then its survivors are resolved among themselves exactly, in
    order, with Python integers as bit rows of their pairwise suppression matrix. A candidate
    is compared only once it is reached, so candidates after the ``max_keep``-th kept box cost
    nothing. The IoU is the same float64 expression, in the same operand order, as before.
    """
    n = len(boxes)
    if n == 0:
        return np.zeros(0, dtype=np.intp)
    iou_threshold = iou_float32(iou_threshold)
    b = boxes.astype(np.float64)
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1) * (y2 - y1)

    def suppressed(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``[len(rows), len(cols)]``: row box (kept, better) suppresses column box."""
        w = np.maximum(np.minimum(x2[rows, None], x2[cols]) - np.maximum(x1[rows, None], x1[cols]), 0.0)
        h = np.maximum(np.minimum(y2[rows, None], y2[cols]) - np.maximum(y1[rows, None], y1[cols]), 0.0)
        inter = w * h
        out = inter / (areas[rows, None] + areas[cols] - inter) > iou_threshold  # NaN: kept
        if class_ids is not None:
            out &= class_ids[rows, None] == class_ids[cols]
        return out

    keep: list[int] = []
    kept = np.zeros(0, dtype=np.intp)
    with np.errstate(invalid="ignore", divide="ignore"):
        for start in range(0, n, NMS_BLOCK):
            block = np.arange(start, min(start + NMS_BLOCK, n))
            if kept.size:
                block = block[~suppressed(kept, block).any(axis=0)]
            if block.size == 0:
                continue
            bits = np.packbits(np.triu(suppressed(block, block), 1), axis=1, bitorder="little")
            row_bytes, masks = bits.shape[1], bits.tobytes()
            removed = 0
            for i in range(len(block)):
                if not (removed >> i) & 1:
                    keep.append(int(block[i]))
                    if len(keep) == max_keep:
                        return np.asarray(keep, dtype=np.intp)
                    removed |= int.from_bytes(masks[i * row_bytes : (i + 1) * row_bytes], "little")
            kept = np.asarray(keep, dtype=np.intp)
    return np.asarray(keep, dtype=np.intp)


#: Sorted candidates of one image: xyxy boxes, scores, class ids and the anchor each came from.
Candidates = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def decode_candidates(raw: np.ndarray, num_classes: int, cfg: PostprocessConfig) -> Candidates:
    """One image's ``[4 + C, A]`` head to sorted candidates: xyxy boxes, scores, class ids, anchors.

    Candidates pass ``score >= conf`` and are sorted by descending score with a stable sort
    (equal scores keep ascending anchor order), then cut to ``pre_nms_top_k``.
    """
    cls_scores = raw[4 : 4 + num_classes]
    class_ids = cls_scores.argmax(axis=0)  # first maximum: lower class id on equal scores
    scores = np.take_along_axis(cls_scores, class_ids[None], axis=0)[0]
    anchors = np.flatnonzero(scores >= cfg.conf_threshold)
    return _sorted_candidates(raw[:4], scores, class_ids, anchors, cfg)


def _sorted_candidates(
    cxcywh: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, anchors: np.ndarray, cfg: PostprocessConfig
) -> Candidates:
    """``anchors`` (those passing the threshold) best first, stable, cut to ``pre_nms_top_k``."""
    order = anchors[np.argsort(-scores[anchors], kind="stable")][: cfg.pre_nms_top_k]
    cx, cy, w, h = (cxcywh[k, order] for k in range(4))
    boxes = np.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), axis=1)
    return boxes, scores[order], class_ids[order].astype(np.int32), order


def _nms_detections(
    candidates: Candidates, lb: Letterbox, cfg: PostprocessConfig
) -> tuple[Detections, np.ndarray]:
    """NMS over one image's sorted candidates, kept boxes mapped to source pixels; with the
    anchor index of each kept detection (where its embedding is)."""
    boxes, scores, class_ids, anchors = candidates
    keep = nms_numpy(boxes, None if cfg.class_agnostic else class_ids, cfg.iou_threshold, cfg.max_detections)
    return Detections(lb.to_source(boxes[keep]), scores[keep], class_ids[keep]), anchors[keep]


def _with_embeddings(dets: Detections, embeddings: np.ndarray) -> Detections:
    """``dets`` with ``embeddings [N, D]`` (rows aligned with its boxes) attached."""
    return Detections(dets.boxes, dets.scores, dets.class_ids, np.ascontiguousarray(embeddings, np.float32))


def _from_raw(
    raw: np.ndarray, letterboxes: Sequence[Letterbox], cfg: PostprocessConfig, embeddings: np.ndarray | None
) -> list[Detections]:
    num_classes = _check_raw_shape(raw.shape, len(letterboxes), cfg)
    raw = np.asarray(raw, dtype=np.float32)
    if embeddings is not None:
        _check_embeddings_shape(embeddings.shape, raw.shape)
    results = []
    for b, (image_raw, lb) in enumerate(zip(raw, letterboxes, strict=True)):
        dets, anchors = _nms_detections(decode_candidates(image_raw, num_classes, cfg), lb, cfg)
        if embeddings is not None:  # [D, A] -> the kept anchors' columns, as rows [N, D]
            dets = _with_embeddings(dets, embeddings[b][:, anchors].T)
        results.append(dets)
    return results


def _from_engine_nms(
    output: EngineOutput, letterboxes: Sequence[Letterbox], cfg: PostprocessConfig
) -> list[Detections]:
    """Map in-engine NMS results back; re-apply the thresholds that can change at run time.

    The engine's NMS was built with the configured thresholds, but ``conf_threshold`` and
    ``max_detections`` are live parameters: applying them here lets a raised threshold or a
    lower cap act at once. (A lower threshold, another IoU or class-agnostic mode needs the
    engine rebuilt; the CUDA backend takes those as device scalars instead.)

    Whole-batch array operations (this runs per frame on the host, in the GPU pipeline's
    critical path): each image's rows are its first ``count`` slots passing the threshold,
    best first, cut to ``max_detections``. Both in-engine NMS implementations return rows
    sorted by score; an image whose rows are not is re-sorted (stable) on its own. Gathered
    ``embeddings [B, K, D]`` (in the order of ``nms_boxes``) follow the same selection.
    """
    assert output.nms_boxes is not None and output.nms_scores is not None and output.nms_classes is not None
    counts = np.asarray(output.nms_count).reshape(-1)
    if len(counts) != len(letterboxes):
        raise ValueError(f"in-engine NMS output has batch {len(counts)} but {len(letterboxes)} letterboxes")
    slots = output.nms_scores.shape[1]
    top = min(max(int(counts.max(initial=0)), 0), slots)  # the padding after it is never read
    boxes = np.asarray(output.nms_boxes[:, :top], dtype=np.float32)
    scores = np.asarray(output.nms_scores[:, :top], dtype=np.float32)
    classes = np.asarray(output.nms_classes[:, :top]).astype(np.int32, copy=False)
    embeddings = None
    if output.embeddings is not None:
        emb_shape = np.shape(output.embeddings)
        if len(emb_shape) != 3 or emb_shape[:2] != output.nms_scores.shape[:2]:
            raise ValueError(
                f"in-engine NMS embeddings of shape {emb_shape} must be [B, K, D] with "
                f"[B, K] = {output.nms_scores.shape[:2]}"
            )
        embeddings = np.asarray(output.embeddings[:, :top], dtype=np.float32)
    within = np.arange(top) < counts[:, None]
    unsorted = np.any(within[:, 1:] & (scores[:, 1:] > scores[:, :-1]), axis=1)
    keep = within & (scores >= cfg.conf_threshold)
    if top > cfg.max_detections:
        keep &= np.cumsum(keep, axis=1) <= cfg.max_detections
    batched = len(letterboxes) > 2  # one mapping for the batch beats a few per image from here
    mapped = _to_source_batch(boxes, letterboxes) if batched else boxes
    results: list[Detections] = []
    for b, lb in enumerate(letterboxes):
        sel: np.ndarray = keep[b]
        if bool(unsorted[b]):  # not best first: the rule's order (stable by descending score)
            n = min(max(int(counts[b]), 0), top)
            sel = np.flatnonzero(scores[b, :n] >= cfg.conf_threshold)
            sel = sel[np.argsort(-scores[b, sel], kind="stable")][: cfg.max_detections]
        picked = mapped[b, sel] if batched else lb.to_source(boxes[b, sel])
        emb = None if embeddings is None else embeddings[b, sel]
        results.append(Detections(picked, scores[b, sel], classes[b, sel], emb))
    return results


def _to_source_batch(boxes: np.ndarray, letterboxes: Sequence[Letterbox]) -> np.ndarray:
    """:meth:`Letterbox.to_source` for ``[B, K, 4]`` boxes at once, with the same float32 steps."""
    params = np.array([(lb.pad_x, lb.pad_y, lb.scale, lb.src_w, lb.src_h) for lb in letterboxes], np.float64)
    pad_x, pad_y, scale, src_w, src_h = (params[:, k].astype(np.float32)[:, None, None] for k in range(5))
    out = np.empty(boxes.shape, np.float32)
    xs, ys = out[..., 0::2], out[..., 1::2]
    np.divide(boxes[..., 0::2] - pad_x, scale, out=xs)
    np.divide(boxes[..., 1::2] - pad_y, scale, out=ys)
    np.clip(xs, np.float32(0.0), src_w, out=xs)
    np.clip(ys, np.float32(0.0), src_h, out=ys)
    return out


def postprocess(
    output: EngineOutput, letterboxes: Sequence[Letterbox], cfg: PostprocessConfig
) -> list[Detections]:
    """Detections per image, in source pixels, from either form of :class:`EngineOutput`."""
    output.wait()  # an asynchronous backend's arrays are valid from here
    if output.has_nms:
        return _from_engine_nms(output, letterboxes, cfg)
    if output.raw is None:
        raise ValueError("EngineOutput has neither raw nor nms_* results")
    embeddings = None if output.embeddings is None else np.asarray(output.embeddings, dtype=np.float32)
    return _from_raw(np.asarray(output.raw), letterboxes, cfg, embeddings)


@functools.cache
def _torchvision_nms() -> Any:
    """``torchvision.ops.nms`` or None where torchvision cannot be imported (CPU-torch machines).

    Cached: a failing import is slow and would otherwise be retried on every frame.
    """
    try:
        from torchvision.ops import nms
    except Exception:  # ImportError, or a CUDA torchvision wheel beside a CPU torch
        return None
    return nms


#: :func:`postprocess_torch` runs NMS on the host (NumPy) when no image of the batch has more
#: candidates than this, else on the device (torchvision). NumPy's greedy loop costs ~10 small
#: array operations per *kept* box, torch ~30 launches and 3 synchronisations per batch
#: whatever the count: on the H100 host the device path took 1.3 ms for a frame of 6 objects
#: (``benchmarks/pipeline_gpu.md``), which NumPy matches only past a few hundred candidates.
HOST_NMS_MAX_CANDIDATES = 256


def postprocess_torch(
    raw: torch.Tensor,
    letterboxes: Sequence[Letterbox],
    cfg: PostprocessConfig,
    embeddings: torch.Tensor | None = None,
) -> list[Detections]:
    """The same rule as :func:`postprocess` on a torch ``[B, 4 + C, A]`` tensor (GPU or CPU).

    The class maximum is taken on the tensor's device, which shrinks the head to six rows per
    anchor (box, best score, its class) before the one device-to-host copy. Then, per batch:

    * few candidates (every image at most :data:`HOST_NMS_MAX_CANDIDATES`, or torchvision
      missing): threshold, stable sort and greedy NMS on the host with the NumPy path's own
      code (:func:`nms_numpy`), so the result is that path's by construction;
    * many candidates (a low ``conf_threshold``, a crowd): :func:`_nms_on_device`, where the
      quadratic part runs in torchvision's NMS kernel.

    Ties between classes go to the lower class id, as NumPy's argmax. Per-anchor
    ``embeddings [B, D, A]`` (on any device) are gathered at the kept anchors on their device,
    so only the kept detections' vectors cross to the host.
    """
    import torch

    batch = len(letterboxes)
    num_classes = _check_raw_shape(tuple(raw.shape), batch, cfg)
    if embeddings is not None:
        _check_embeddings_shape(tuple(embeddings.shape), tuple(raw.shape))
        embeddings = torch.as_tensor(embeddings, device=raw.device).detach()
    raw = raw.detach().float()
    scores_all, class_all = raw[:, 4 : 4 + num_classes].max(dim=1)  # [B, A] each
    packed = torch.cat((raw[:, :4], scores_all[:, None], class_all[:, None].float()), dim=1)
    host = packed.cpu().numpy()  # [B, 6, A]: cx, cy, w, h, score, class (exact in float32)
    passing = [np.flatnonzero(host[b, 4] >= cfg.conf_threshold) for b in range(batch)]
    nms = _torchvision_nms()
    if nms is not None and max(len(a) for a in passing) > HOST_NMS_MAX_CANDIDATES:
        return _nms_on_device(nms, raw, scores_all, class_all, letterboxes, cfg, embeddings)
    kept = [
        _nms_detections(_sorted_candidates(host[b, :4], host[b, 4], host[b, 5], passing[b], cfg), lb, cfg)
        for b, lb in enumerate(letterboxes)
    ]
    if embeddings is None:
        return [dets for dets, _ in kept]
    # One gather and one device-to-host copy for the batch: rows [sum N, D] in image order.
    image = np.concatenate([np.full(len(anchors), b, np.int64) for b, (_, anchors) in enumerate(kept)])
    anchor = np.concatenate([anchors.astype(np.int64) for _, anchors in kept])
    index = (torch.from_numpy(image).to(raw.device), torch.from_numpy(anchor).to(raw.device))
    rows = embeddings[index[0], :, index[1]].float().cpu().numpy()
    bounds = np.cumsum([0] + [len(dets) for dets, _ in kept])
    return [_with_embeddings(dets, rows[bounds[b] : bounds[b + 1]]) for b, (dets, _) in enumerate(kept)]


def _nms_on_device(
    nms: Any,
    raw: torch.Tensor,
    scores_all: torch.Tensor,
    class_all: torch.Tensor,
    letterboxes: Sequence[Letterbox],
    cfg: PostprocessConfig,
    embeddings: torch.Tensor | None = None,
) -> list[Detections]:
    """:func:`postprocess_torch` for many candidates: sort and NMS for the whole batch at once.

    Three host synchronisations per batch (the candidate count, torchvision's NMS mask, the
    result), whatever its size. Three details keep it identical to the NumPy path:

    * candidates are sorted by score with a stable sort and then, stably, by image, so each
      image's candidates are best first with equal scores in anchor order; torchvision's
      unstable sort gets each candidate's *rank* in that order as its score.
    * class-wise NMS (and the batch) uses the coordinate-offset trick, each (image, class) in
      its own band, in float64: the shift moves a float32 coordinate by at most ~1e-10 px,
      against ~1e-4 px had it been done in float32 (ultralytics' ``max_wh`` offset), so IoUs
      are those of the NumPy path. Unlike torchvision's ``batched_nms`` offset, the bands
      also hold negative boxes.
    * ``pre_nms_top_k`` and ``max_detections`` are applied per image.
    """
    import torch

    batch = len(letterboxes)
    num_classes = cfg.num_classes
    # Row-major (image, anchor) pairs: anchors ascending within each image.
    image, anchor = torch.nonzero(scores_all >= cfg.conf_threshold).unbind(1)
    if image.numel() == 0:
        return [Detections.empty() for _ in range(batch)]
    scores, order = torch.sort(scores_all[image, anchor], descending=True, stable=True)
    image, anchor = image[order], anchor[order]
    if batch > 1:
        image, order = torch.sort(image, stable=True)
        scores, anchor = scores[order], anchor[order]
    if image.numel() > cfg.pre_nms_top_k:  # some image may have more: cut each to its top k
        counts = torch.bincount(image, minlength=batch)
        rank = torch.arange(image.numel(), device=image.device) - (torch.cumsum(counts, 0) - counts)[image]
        top = rank < cfg.pre_nms_top_k
        image, anchor, scores = image[top], anchor[top], scores[top]
    class_ids = class_all[image, anchor]
    centre_size = raw[image, :4, anchor]  # [n, 4]: cx, cy, w, h
    half = centre_size[:, 2:] / 2
    boxes = torch.cat((centre_size[:, :2] - half, centre_size[:, :2] + half), dim=1)
    n = boxes.shape[0]
    rank_scores = torch.arange(n, 0, -1, device=boxes.device, dtype=torch.float64)
    boxes64 = boxes.double()
    if batch > 1 or not cfg.class_agnostic:
        # Shift to >= 0, then give each band its own interval wider than all boxes together.
        band = image if cfg.class_agnostic else image * num_classes + class_ids
        low = boxes64.min()
        span = torch.ceil(boxes64.max() - low) + 1.0
        boxes64 = boxes64 - low + (band.double() * span)[:, None]
    keep = nms(boxes64, rank_scores, iou_float32(cfg.iou_threshold))  # best first: grouped by image
    # One device-to-host copy; class ids and image indices are exact in float32.
    rows = torch.cat((boxes, scores[:, None], class_ids[:, None].float(), image[:, None].float()), dim=1)
    rows = rows[keep]
    if embeddings is not None:  # the kept anchors' vectors ride in the same copy, columns 7:
        rows = torch.cat((rows, embeddings[image[keep], :, anchor[keep]].float()), dim=1)
    kept = rows.cpu().numpy()
    bounds = np.searchsorted(kept[:, 6], np.arange(batch + 1))
    results: list[Detections] = []
    for b, lb in enumerate(letterboxes):
        mine = kept[bounds[b] : bounds[b + 1]][: cfg.max_detections]
        emb = np.ascontiguousarray(mine[:, 7:]) if embeddings is not None else None
        results.append(Detections(lb.to_source(mine[:, :4]), mine[:, 4], mine[:, 5], emb))
    return results
