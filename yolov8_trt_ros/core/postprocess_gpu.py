"""Decode + greedy NMS of the YOLOv8 head on the GPU, graph-capturable, to fixed-size outputs.

:class:`GpuNms` enqueues, on the current torch stream and without any host synchronisation
or allocation, one memset and the four kernels of ``kernels/nms.cu`` (compiled with NVRTC
through cuda-python, as ``preprocess_cuda.py`` compiles ``letterbox.cu``):

1. ``nms_candidates``: best class score and class per anchor; anchors with ``score >= conf``
   are appended to the image's candidate list;
2. ``nms_rank``: each candidate's rank in the rule's order (score descending, equal scores in
   anchor order: the NumPy path's stable sort) by counting, and the first ``K`` written in
   that order as xyxy boxes, scores, classes, with ``n = min(#candidates, K, pre_nms_top_k)``;
3. ``nms_mask``: the pairwise suppression bit matrix of the first ``n`` (IoU in float64);
4. ``nms_scan``: one block per image walks it greedily and writes the EfficientNMS contract
   (count, boxes ``[M, 4]``, scores ``[M]``, classes ``[M]``, zero-padded) into one packed
   float32 row per image, so that one device-to-host copy fetches the whole batch;
5. with appearance embeddings (``embedding_dim > 0``), ``nms_scan`` also writes each kept
   detection's anchor index into the row and ``nms_gather_embeddings`` copies that anchor's
   embedding (from the per-anchor ``[B, anchors, D]`` tensor the caller computed in the same
   stream) after it: the row grows by ``M * (1 + D)`` words, still one copy.

The head is read as it comes out of the network (float16 or float32). So the rule is
:mod:`yolov8_trt_ros.core.postprocess`'s exactly (the tests compare every bit with the NumPy
path). Sizes are fixed when the object is made: ``K = min(pre_nms_top_k, anchors,
MAX_CANDIDATES)`` candidates enter NMS, ``M = max_detections`` come out. The run-time
parameters live in a 5-float device array read by the kernels (:meth:`configure` writes it on
the stream, in order with the launches), so a captured graph never needs re-capturing for a
new ``conf_threshold``, ``iou_threshold``, ``class_agnostic``, a lower ``pre_nms_top_k`` or
``max_detections``; raising the last two above ``K`` / ``M`` is capped there (logged once),
as TensorRT's engine caps them at build time.

Why hand-written kernels: torchvision's NMS returns a variable-length index list computed on
the host (a synchronisation, not capturable); ``batched_nms`` needs the coordinate-offset
trick, which rounds boxes. The bit matrix + one-block scan is the usual graph-friendly form.
No ``torch.sort`` either: counting ranks needs nothing but the preallocated buffers, so the
detection end allocates nothing inside a capture and runs the same eagerly or replayed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from yolov8_trt_ros.core.config import PostprocessConfig

LOG = logging.getLogger(__name__)

KERNEL_SOURCE = Path(__file__).with_name("kernels") / "nms.cu"
#: Most candidates that enter NMS per image: the bit matrix is ``K * K / 8`` bytes per image
#: (8.8 MB for 640x640's 8400 anchors). TensorRT's EfficientNMS keeps at most 4096.
MAX_CANDIDATES = 16384
_SCAN_THREADS = 128
_MASK_BLOCKS = 128  # blocks per image that stride over the 64 x 64 tiles


def _params(cfg: PostprocessConfig) -> np.ndarray:
    """The device parameter record, float32 like the thresholds the kernels compare with."""
    return np.array(
        [
            cfg.conf_threshold,
            cfg.iou_threshold,
            float(cfg.class_agnostic),
            float(min(cfg.pre_nms_top_k, 1 << 24)),
            float(min(cfg.max_detections, 1 << 24)),
        ],
        np.float32,
    )


class GpuNms:
    """Fixed-size GPU decode + NMS for heads ``[B <= max_batch, 4 + C, anchors]``.

    ``out`` (float32 ``[max_batch, row_words]``) receives the packed results; :func:`unpack`
    turns host copies of its rows into the ``nms_*`` arrays of an ``EngineOutput`` and, with
    ``embedding_dim > 0``, :func:`unpack_embeddings` into the kept anchors and embeddings.
    """

    def __init__(
        self,
        cfg: PostprocessConfig,
        num_classes: int,
        anchors: int,
        max_batch: int,
        device: Any,
        embedding_dim: int = 0,
    ) -> None:
        import torch
        from cuda.bindings import driver as cu

        from yolov8_trt_ros.core.preprocess_cuda import _check, compile_kernel

        self._cu, self._check = cu, _check
        self.num_classes, self.anchors, self.max_batch = num_classes, anchors, max_batch
        self.capacity = min(cfg.pre_nms_top_k, anchors, MAX_CANDIDATES)  # K
        self.max_detections = cfg.max_detections  # M
        self.nwords = -(-self.capacity // 64)
        self._warned: set[str] = set()
        _check(cu.cuInit(0), "cuInit")
        index = device.index if device.index is not None else torch.cuda.current_device()
        self._device = _check(cu.cuDeviceGet(index), "cuDeviceGet")
        self._ctx = _check(cu.cuDevicePrimaryCtxRetain(self._device), "cuDevicePrimaryCtxRetain")
        _check(cu.cuCtxSetCurrent(self._ctx), "cuCtxSetCurrent")
        major, minor = torch.cuda.get_device_capability(device)
        image, _kind = compile_kernel(KERNEL_SOURCE.read_text(), major, minor, "nms.cu")
        self._module = _check(cu.cuModuleLoadData(image), "cuModuleLoadData(nms)")
        self._fn = {
            name: _check(cu.cuModuleGetFunction(self._module, name.encode()), f"cuModuleGetFunction({name})")
            for name in ("nms_candidates", "nms_rank", "nms_mask", "nms_scan", "nms_gather_embeddings")
        }
        K, M, B, A = self.capacity, self.max_detections, max_batch, anchors
        f32, i32 = torch.float32, torch.int32
        self.params = torch.from_numpy(_params(cfg)).to(device)
        self._score = torch.empty((B, A), dtype=f32, device=device)
        self._cls = torch.empty((B, A), dtype=i32, device=device)
        self._list = torch.empty((B, A), dtype=i32, device=device)
        self._list_len = torch.zeros((B,), dtype=i32, device=device)
        self._cand_box = torch.empty((B, K, 4), dtype=f32, device=device)
        self._cand_score = torch.empty((B, K), dtype=f32, device=device)
        self._cand_cls = torch.empty((B, K), dtype=i32, device=device)
        self._cand_anchor = torch.empty((B, K), dtype=i32, device=device)
        self._count = torch.zeros((B,), dtype=i32, device=device)
        self._mask = torch.empty((B, K, self.nwords), dtype=torch.int64, device=device)
        self.embedding_dim = embedding_dim
        self.row_words = row_words(M, embedding_dim)
        self.out = torch.zeros((B, self.row_words), dtype=f32, device=device)
        self._last = _params(cfg)

    def configure(self, cfg: PostprocessConfig) -> None:
        """Write the run-time thresholds on the current stream (only when they changed)."""
        import torch

        values = _params(cfg)
        if np.array_equal(values, self._last):
            return
        for name, asked, cap in (
            ("pre_nms_top_k", cfg.pre_nms_top_k, self.capacity),
            ("max_detections", cfg.max_detections, self.max_detections),
        ):
            if asked > cap and name not in self._warned:
                self._warned.add(name)
                LOG.warning("GPU NMS: %s=%d is capped at %d, set when the backend was made", name, asked, cap)
        self._last = values
        self.params.copy_(torch.from_numpy(values))  # pageable: staged before this returns

    def _launch(self, name: str, grid: tuple[int, int, int], block: int, shared: int, *args: Any) -> None:
        """``cuLaunchKernel`` on the current torch stream; ``args`` are ``(value, numpy dtype)``."""
        import torch

        cells = [np.array([value], dtype) for value, dtype in args]
        pointers = np.array([c.ctypes.data for c in cells], np.uint64)
        stream = torch.cuda.current_stream().cuda_stream
        self._check(
            self._cu.cuLaunchKernel(
                self._fn[name], *grid, block, 1, 1, shared, stream, pointers.ctypes.data, 0
            ),
            f"cuLaunchKernel({name})",
        )

    def enqueue(self, head: Any, embeddings: Any = None) -> Any:
        """Decode + NMS of ``head`` ``[B, >= 4 + C, anchors]`` on the current stream; returns ``out[:B]``.

        ``embeddings`` (float32 ``[B, anchors, embedding_dim]``, contiguous) is required when the
        object was made with ``embedding_dim > 0``, and its kept rows are gathered into ``out``.
        """
        import torch

        batch, rows, anchors = (int(d) for d in head.shape)
        if anchors != self.anchors or rows < 4 + self.num_classes or not 1 <= batch <= self.max_batch:
            raise ValueError(
                f"head {tuple(head.shape)} does not fit GpuNms({self.num_classes}, {self.anchors})"
            )
        D = self.embedding_dim
        if D and (
            embeddings is None
            or tuple(embeddings.shape) != (batch, anchors, D)
            or embeddings.dtype != torch.float32
            or not embeddings.is_contiguous()
        ):
            shape = None if embeddings is None else tuple(embeddings.shape)
            raise ValueError(f"embeddings {shape} must be contiguous float32 [{batch}, {anchors}, {D}]")
        if head.dtype not in (torch.float16, torch.float32):
            head = head.float()
        head = head.contiguous()  # the network's output already is: no copy
        cu = self._cu
        self._check(cu.cuCtxSetCurrent(self._ctx), "cuCtxSetCurrent")  # a new thread may call
        stream = torch.cuda.current_stream().cuda_stream
        K, M, W = self.capacity, self.max_detections, self.nwords
        ptr, i32 = np.uint64, np.int32
        is_half = (int(head.dtype == torch.float16), i32)
        self._check(cu.cuMemsetD32Async(self._list_len.data_ptr(), 0, batch, stream), "cuMemsetD32Async")
        blocks = (-(-anchors // 256), batch, 1)
        self._launch(
            "nms_candidates",
            blocks,
            256,
            0,
            (head.data_ptr(), ptr),
            is_half,
            (rows, i32),
            (self.num_classes, i32),
            (anchors, i32),
            (self.params.data_ptr(), ptr),
            (self._score.data_ptr(), ptr),
            (self._cls.data_ptr(), ptr),
            (self._list.data_ptr(), ptr),
            (self._list_len.data_ptr(), ptr),
        )
        self._launch(
            "nms_rank",
            blocks,
            256,
            0,
            (head.data_ptr(), ptr),
            is_half,
            (rows, i32),
            (anchors, i32),
            (self._score.data_ptr(), ptr),
            (self._cls.data_ptr(), ptr),
            (self._list.data_ptr(), ptr),
            (self._list_len.data_ptr(), ptr),
            (self.params.data_ptr(), ptr),
            (K, i32),
            (self._cand_box.data_ptr(), ptr),
            (self._cand_score.data_ptr(), ptr),
            (self._cand_cls.data_ptr(), ptr),
            (self._cand_anchor.data_ptr(), ptr),
            (self._count.data_ptr(), ptr),
        )
        self._launch(
            "nms_mask",
            (_MASK_BLOCKS, batch, 1),
            64,
            0,
            (self._cand_box.data_ptr(), ptr),
            (self._cand_cls.data_ptr(), ptr),
            (self._count.data_ptr(), ptr),
            (self.params.data_ptr(), ptr),
            (K, i32),
            (W, i32),
            (self._mask.data_ptr(), ptr),
        )
        self._launch(
            "nms_scan",
            (batch, 1, 1),
            _SCAN_THREADS,
            8 * W,
            (self._mask.data_ptr(), ptr),
            (self._cand_box.data_ptr(), ptr),
            (self._cand_score.data_ptr(), ptr),
            (self._cand_cls.data_ptr(), ptr),
            (self._cand_anchor.data_ptr(), ptr),
            (self._count.data_ptr(), ptr),
            (self.params.data_ptr(), ptr),
            (K, i32),
            (W, i32),
            (M, i32),
            (self.row_words, i32),
            (int(D > 0), i32),
            (self.out.data_ptr(), ptr),
        )
        if D:
            self._launch(
                "nms_gather_embeddings",
                (M, batch, 1),
                min(128, -(-D // 32) * 32),
                0,
                (embeddings.data_ptr(), ptr),
                (anchors, i32),
                (D, i32),
                (M, i32),
                (self.row_words, i32),
                (self.out.data_ptr(), ptr),
            )
        return self.out[:batch]

    def close(self) -> None:
        if self._module is not None:
            self._cu.cuModuleUnload(self._module)
            self._module = None
            self._cu.cuDevicePrimaryCtxRelease(self._device)


def row_words(max_detections: int, embedding_dim: int = 0) -> int:
    """Float32 words of one image's packed row: count, boxes, scores, classes (and, with
    embeddings, the kept anchors and their ``[M, D]`` embeddings)."""
    M = max_detections
    return 1 + 6 * M + (M * (1 + embedding_dim) if embedding_dim > 0 else 0)


def unpack(rows: np.ndarray, max_detections: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``nms_count [B]``, ``nms_boxes [B, M, 4]``, ``nms_scores [B, M]``, ``nms_classes [B, M]``
    as views of packed float32 rows ``[B, >= 1 + 6 M]`` (count and classes are int32 bits)."""
    M = max_detections
    as_int = rows.view(np.int32)
    batch = rows.shape[0]
    return (
        as_int[:, 0],
        rows[:, 1 : 1 + 4 * M].reshape(batch, M, 4),
        rows[:, 1 + 4 * M : 1 + 5 * M],
        as_int[:, 1 + 5 * M : 1 + 6 * M],
    )


def unpack_embeddings(
    rows: np.ndarray, max_detections: int, embedding_dim: int
) -> tuple[np.ndarray, np.ndarray]:
    """Kept anchors ``[B, M]`` (int32, -1 past the count) and embeddings ``[B, M, D]`` (zeros
    past the count) as views of packed rows made with ``embedding_dim = D``."""
    M, D = max_detections, embedding_dim
    batch = rows.shape[0]
    if rows.shape[1] != row_words(M, D):
        raise ValueError(f"packed rows of {rows.shape[1]} words are not rows of M={M}, D={D}")
    return (
        rows.view(np.int32)[:, 1 + 6 * M : 1 + 7 * M],
        rows[:, 1 + 7 * M :].reshape(batch, M, D),
    )
