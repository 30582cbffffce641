"""PyTorch on an NVIDIA GPU, for machines with CUDA but without TensorRT.

Loads the ultralytics ``.pt`` that sits next to the ONNX (``models/x.onnx`` → ``models/x.pt``;
or ``model_path`` is the ``.pt`` itself), fuses Conv+BN, puts the detection head in export
mode (it then returns only the decoded head ``[B, 4 + C, A]``), runs FP16 (``fp16``/``int8``:
PyTorch has no INT8 path for this network, so INT8 runs as FP16 and says so) or FP32 (true
FP32: TF32 is switched off, see :func:`_disable_tf32`), and
captures one CUDA graph per batch size on first use: the input is copied into a static
buffer and the graph replayed, which removes the per-layer launch overhead that dominates a
model this small.

``infer`` has two forms, chosen by ``EngineConfig.end2end_nms``:

* ``True`` (the default): the detection end runs on the GPU too (``core/postprocess_gpu.py``:
  decode, stable sort, bit-matrix NMS, all without host synchronisation) and is captured in
  the same CUDA graph as the network, so one replay yields EfficientNMS-style fixed-size
  outputs. One small device-to-host copy per batch brings them into pinned host memory
  (``host_outputs.py``) and ``infer`` returns at once: the ``EngineOutput``'s ``wait()``
  blocks on the copy's event when the results are read. ``nms_*`` are then in network-input
  pixels, like TensorRT's, and ``postprocess`` maps them back. The thresholds are device
  scalars: :meth:`CudaBackend.update_postprocess` (the pipeline calls it at every launch,
  cheap when nothing changed) applies new ones without re-capturing.
* ``False``: ``raw`` is the decoded head as a **torch CUDA tensor** (float32,
  ``[B, 4 + C, A]``), a fresh tensor per call (the graph's static output is cloned), ready on
  the caller's current stream; ``postprocess_torch`` decodes it. Kept for the raw-head tests
  (against ONNX Runtime) and for callers that want the head itself.

**Appearance embeddings** (re-identification from the detector's own features, issue 12):
on when the ONNX next to the weights has an ``embeddings`` output (the model declares them, as
for ONNX Runtime and TensorRT; ``embeddings=`` forces either way). A forward pre-hook on the
``Detect`` head reduces its input feature maps to one L2-normalised ``[D]`` vector per anchor
(:func:`anchor_embeddings`: ultralytics' ``get_obj_feats`` reduction, or the learned branch whose
weights the ONNX carries) inside the same forward,
hence inside the same CUDA graph. End to end, the NMS kernels record each kept detection's
anchor and gather its embedding into the packed row (``[B, max_detections, D]``, D*4 bytes
per slot, zeros past the count), still one device-to-host copy; ``EngineOutput.embeddings``
views it like the ``nms_*`` arrays. Raw form: ``embeddings`` is a torch CUDA tensor
``[B, D, A]``. Off, nothing of this runs and the rows are those of before.

The input copy into the graph's static input is one launch before the replay rather than a
node of the graph: a captured copy would bind the graph to one source address, and the
callers (the preprocessor, the benchmarks, tests) pass different buffers.

Why not convert the ONNX to PyTorch (onnx2torch): the ``.pt`` is the source of truth the ONNX
was exported from, ultralytics already knows how to fuse it, and it avoids another
dependency. The cost is needing ultralytics on the GPU machine.
"""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from yolov8_trt_ros.core.backends.base import BackendError, BackendInfo
from yolov8_trt_ros.core.backends.io_plan import EMBEDDINGS_OUTPUT
from yolov8_trt_ros.core.backends.model_info import parse_imgsz, parse_names, read_model_info
from yolov8_trt_ros.core.config import EngineConfig, PostprocessConfig
from yolov8_trt_ros.core.embeddings import LearnedEmbedding
from yolov8_trt_ros.core.types import EngineOutput

LOG = logging.getLogger(__name__)


def anchor_embeddings(feats: Any, projection: Any = None, branch: Any = None, early: Any = None) -> Any:
    """Per-anchor appearance embeddings ``[B, A, D]`` (float32, L2-normalised rows) of the
    ``Detect`` head's input feature maps ``[B, C_l, H_l, W_l]``.

    The issue-12 contract, shared with the exported ONNX: ``D = min_l C_l``; per cell, the
    channels-last vector reshaped to ``(D, C_l // D)`` and averaged over the last axis (groups
    of ``C_l // D`` contiguous channels, exactly ultralytics' ``get_obj_feats``), levels
    concatenated in the head's anchor order (row-major cells, P3 first), then divided by
    ``max(norm, 1e-12)``. Anchor-major ``[B, A, D]`` so that a kept anchor's row is contiguous
    for the gather; the ONNX's ``[B, D, A]`` is its transpose. Reduced in float32 whatever the
    network's precision (an FP16 mean of four values would lose bits for nothing).
    ``projection``: the ONNX's learned ``[D, D]`` map (``embeddings.PROJECTION``), a float32
    tensor on the features' device applied before the normalisation, or None.
    ``branch``: the ONNX's learned branch instead of the reduction, per level the float32
    tensors ``(w1, b1, w2, b2)`` of ``Conv 3x3 -> SiLU -> Conv 1x1`` (``embeddings.BRANCH``);
    ``early``: the early backbone map it also reads, average-pooled to each level's cells and
    concatenated after the level's channels (``embeddings.branch_inputs``), or None.
    """
    import torch
    import torch.nn.functional as F

    if branch is not None:  # in the weights' precision (the network's, as a graph runs it)
        levels = []
        for x, (w1, b1, w2, b2) in zip(feats, branch, strict=True):
            x = x.to(w1.dtype)
            if early is not None:
                kernel = int(early.shape[-2]) // int(x.shape[-2])
                x = torch.cat((x, F.avg_pool2d(early.to(w1.dtype), kernel)), dim=1)
            y = F.conv2d(F.silu(F.conv2d(x, w1, b1, padding=1)), w2, b2)
            levels.append(y.flatten(2).transpose(1, 2).float())
        return F.normalize(torch.cat(levels, dim=1), p=2.0, dim=-1, eps=1e-12)
    dim = min(int(x.shape[1]) for x in feats)
    if any(int(x.shape[1]) % dim for x in feats):
        raise ValueError(f"feature channels {[int(x.shape[1]) for x in feats]} are not multiples of {dim}")
    levels = [
        x.float().permute(0, 2, 3, 1).reshape(x.shape[0], -1, dim, int(x.shape[1]) // dim).mean(dim=-1)
        for x in feats
    ]
    reduced = torch.cat(levels, dim=1)
    if projection is not None:
        reduced = reduced @ projection
    return F.normalize(reduced, p=2.0, dim=-1, eps=1e-12)


class EmbeddingTap:
    """Forward pre-hook for the ``Detect`` head: :func:`anchor_embeddings` of its inputs.

    A pre-hook rather than a wrapper module: ultralytics' ``DetectionModel`` runs its layers
    through their ``f``/``i`` attributes, which a replaced head would have to copy, and some
    versions overwrite the input list in place inside ``Detect.forward`` (reduced before that
    here). :meth:`take` hands the last forward's tensor to the caller.
    """

    def __init__(self, projection: Any = None, branch: Any = None) -> None:
        self.value: Any = None
        self.projection = projection
        self.branch = branch
        #: The early map of this forward, when :meth:`keep_early` hooks the layer that makes it.
        self.early: Any = None

    def keep_early(self, _module: Any, _args: tuple[Any, ...], output: Any) -> None:
        """Forward hook for the early backbone layer a branch reads."""
        self.early = output

    def __call__(self, _module: Any, args: tuple[Any, ...]) -> None:
        self.value = anchor_embeddings(args[0], self.projection, self.branch, self.early)
        self.early = None

    def take(self) -> Any:
        value, self.value = self.value, None
        if value is None:
            raise BackendError("the Detect head's embedding hook did not run")
        return value


def install_embedding_tap(
    model: Any, learned: LearnedEmbedding, device: Any, dtype: Any = None
) -> EmbeddingTap:
    """Hook an ultralytics ``DetectionModel``'s ``Detect`` head (and, for a branch that reads it,
    the early layer) so that every forward leaves its per-anchor embeddings in the returned tap;
    ``learned``'s weights as tensors on ``device``: a branch's in ``dtype`` (the network's; None:
    float32, its convs then run in float32), a projection's in float32."""
    import torch
    from ultralytics.nn.modules.head import Detect

    head = model.model[-1]
    if not isinstance(head, Detect):
        raise BackendError(
            f"embeddings need an ultralytics Detect head, the model ends in {type(head).__name__}"
        )

    def tensor(a: np.ndarray) -> Any:
        return torch.tensor(a, dtype=torch.float32, device=device)

    projection = None if learned.projection is None else tensor(learned.projection)
    branch = None
    if learned.branch is not None:
        conv_dtype = dtype or torch.float32
        branch = [
            tuple(tensor(getattr(p, n)).to(conv_dtype) for n in ("w1", "b1", "w2", "b2"))
            for p in learned.branch
        ]
    tap = EmbeddingTap(projection, branch)
    if learned.early_feature is not None:
        layer = re.match(r"^/model\.(\d+)/", learned.early_feature)
        if layer is None or int(layer.group(1)) >= len(model.model) - 1:
            raise BackendError(
                f"embeddings: no layer of {type(model).__name__} makes {learned.early_feature}"
            )
        model.model[int(layer.group(1))].register_forward_hook(tap.keep_early)
    head.register_forward_pre_hook(tap)
    return tap


def onnx_embeddings(path: Path) -> tuple[bool, LearnedEmbedding]:
    """Whether the ONNX at ``path`` has an :data:`EMBEDDINGS_OUTPUT` output, and what its
    embeddings learnt (``embeddings.learned_embedding``: a projection or a branch) if anything."""
    import onnx

    from yolov8_trt_ros.core.embeddings import learned_embedding

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # read_model_info reported a damaged file already
        return False, LearnedEmbedding()
    if not any(out.name == EMBEDDINGS_OUTPUT for out in model.graph.output):
        return False, LearnedEmbedding()
    return True, learned_embedding(model)


def weights_for(model_path: str | Path) -> Path:
    """The ``.pt`` the CUDA backend loads for ``model_path`` (itself, or the sibling of an ONNX)."""
    path = Path(model_path)
    return path if path.suffix == ".pt" else path.with_suffix(".pt")


def _disable_tf32(torch: Any) -> None:
    """Make ``fp32`` mean IEEE FP32: cuDNN convolutions default to TF32 on Ampere and newer.

    TF32 moves YOLOv8's box outputs by up to ~0.5 px against ONNX Runtime's FP32. The switch
    is process-wide (PyTorch has no per-module setting); it is logged.
    """
    backends = torch.backends
    if hasattr(getattr(backends.cudnn, "conv", None), "fp32_precision"):  # torch >= 2.9
        backends.cudnn.conv.fp32_precision = "ieee"
        backends.cuda.matmul.fp32_precision = "ieee"
    else:
        backends.cudnn.allow_tf32 = False
        backends.cuda.matmul.allow_tf32 = False
    LOG.info("CUDA backend fp32: TF32 disabled for cuDNN convolutions and matmuls (process-wide)")


def _detach(rows: np.ndarray, max_detections: int, embedding_dim: int, out: EngineOutput) -> None:
    """``EngineOutput.wait()``'s last step: own copies of the slot's rows replace the views."""
    from yolov8_trt_ros.core.postprocess_gpu import unpack, unpack_embeddings

    own = rows.copy()
    out.nms_count, out.nms_boxes, out.nms_scores, out.nms_classes = unpack(own, max_detections)
    if embedding_dim:
        out.embeddings = unpack_embeddings(own, max_detections, embedding_dim)[1]


def _cached_tensors(model: Any) -> list[Any]:
    """Tensors the modules hold as plain attributes (caches), which a captured graph reads.

    ultralytics' ``Detect`` caches its ``anchors`` and ``strides`` and recomputes them, as new
    tensors, whenever the input shape changes, the batch size included. A graph captured at
    batch 4 keeps reading the old tensors' memory after the batch-2 graph's warm-up replaced
    them: once freed and reused, the batch-4 replays decoded boxes with garbage anchors (a test
    replaying batch sizes in turn caught it). Holding a reference per graph keeps them valid.
    """
    import torch

    return [
        value
        for module in model.modules()
        for value in vars(module).values()
        if isinstance(value, torch.Tensor)
    ]


class CudaBackend:
    """:class:`~yolov8_trt_ros.core.backends.base.Backend` on PyTorch CUDA with CUDA graphs."""

    def __init__(
        self, cfg: EngineConfig, post: PostprocessConfig | None = None, embeddings: bool | None = None
    ) -> None:
        import torch

        from yolov8_trt_ros.core.export import load_torch_model, prepare_for_export

        if not torch.cuda.is_available():
            raise BackendError(f"torch {torch.__version__} sees no CUDA GPU")
        weights = weights_for(cfg.model_path)
        if not weights.is_file():
            raise BackendError(f"CUDA backend needs the ultralytics weights {weights} (next to the ONNX)")
        onnx_path = Path(cfg.model_path).with_suffix(".onnx")
        onnx_info = read_model_info(onnx_path) if onnx_path.is_file() else None
        try:
            model = load_torch_model(weights)
        except Exception as exc:  # a damaged or foreign pickle raises anything
            raise BackendError(f"cannot load {weights}: {type(exc).__name__}: {exc}") from exc
        if onnx_info is not None:
            size = (onnx_info.input_height, onnx_info.input_width)
        else:
            train_args = getattr(model, "args", {}) or {}
            size = parse_imgsz(str(train_args.get("imgsz", 640))) or (640, 640)
        self.device = torch.device("cuda", cfg.device_id)
        self.half = cfg.precision in ("fp16", "int8")
        if cfg.precision == "int8":
            LOG.info("CUDA backend has no INT8 path: running FP16")
        if not self.half:
            _disable_tf32(torch)
        model = prepare_for_export(model, size)  # fused, Detect in export mode, CPU fp32
        model = model.to(self.device)
        self._model = model.half() if self.half else model
        self._dtype = torch.float16 if self.half else torch.float32
        names = parse_names(str(dict(model.names)), int(model.model[-1].nc))
        if onnx_info is not None and onnx_info.num_classes != len(names):
            raise BackendError(
                f"{weights} has {len(names)} classes, {onnx_path.name} {onnx_info.num_classes}"
            )
        self._torch_stream = torch.cuda.Stream(self.device)
        #: Raw ``cudaStream_t`` the model runs on; the CUDA preprocessor may enqueue on it too.
        self.stream: int = int(self._torch_stream.cuda_stream)
        declared, learned = (
            onnx_embeddings(onnx_path) if onnx_info is not None else (False, LearnedEmbedding())
        )
        if embeddings is None:
            embeddings = declared
        self._tap: EmbeddingTap | None = None
        #: Appearance embedding size D, 0 when this backend emits none.
        self.embedding_dim = 0
        if embeddings:
            self._init_embeddings(size, learned)
        self._use_graph = cfg.cuda_graph
        self._graphs: dict[int, tuple[Any, Any, Any]] = {}  # batch -> (graph, static in, static out)
        self._launchers: dict[int, Any] = {}  # batch -> cudaGraphExec_t, for the fast path
        self._keepalive: dict[int, list[Any]] = {}  # batch -> tensors its graph reads (see _cached_tensors)
        self._views: dict[tuple[int, int], tuple[Any, ...]] = {}  # (slot, batch) -> pinned views
        self._input_typestr = np.dtype(np.float16 if self.half else np.float32).str
        self._closed = False
        self._nms: Any = None
        self._host: Any = None
        self._post_cfg: PostprocessConfig | None = None
        if cfg.end2end_nms:
            self._init_nms(post or PostprocessConfig(), len(names), size, cfg.max_batch_size)
        self.class_names: list[str] = list(names)
        self.info = BackendInfo(
            name="cuda",
            device=f"cuda:{cfg.device_id}",
            precision="fp16" if self.half else "fp32",
            input_width=size[1],
            input_height=size[0],
            max_batch_size=cfg.max_batch_size,
            num_classes=len(names),
            has_nms=self._nms is not None,
            input_fp16=self.half,
            detail=f"torch {torch.__version__}, {torch.cuda.get_device_name(self.device)}, {weights.name}, "
            f"CUDA graphs {'on' if cfg.cuda_graph else 'off'}, "
            f"NMS {'on the GPU' if self._nms is not None else 'off (raw head)'}, "
            f"embeddings {self.embedding_dim or 'off'}",
            class_names=names,
        )

    def _as_tensor(self, images: Any) -> Any:
        """A CUDA tensor view of ``images`` (torch, any CUDA Array Interface object, or NumPy)."""
        import torch

        if isinstance(images, torch.Tensor):
            tensor = images
        elif hasattr(images, "__cuda_array_interface__"):
            cai_stream = images.__cuda_array_interface__.get("stream")
            if cai_stream not in (None, self.stream):
                self._torch_stream.wait_stream(torch.cuda.ExternalStream(int(cai_stream), device=self.device))
            tensor = torch.as_tensor(images, device=self.device)
        elif isinstance(images, np.ndarray):
            tensor = torch.from_numpy(np.ascontiguousarray(images))
        else:
            raise BackendError(f"unsupported input type {type(images).__name__}")
        expected = (3, self.info.input_height, self.info.input_width)
        if tensor.ndim != 4 or tuple(tensor.shape[1:]) != expected:
            raise BackendError(
                f"input shape {tuple(tensor.shape)} must be [B, {', '.join(map(str, expected))}]"
            )
        if not 1 <= tensor.shape[0] <= self.info.max_batch_size:
            raise BackendError(f"batch {tensor.shape[0]} must be in [1, {self.info.max_batch_size}]")
        if not tensor.is_floating_point():
            raise BackendError(f"input dtype {tensor.dtype} must be floating point in [0, 1]")
        return tensor

    def _init_embeddings(self, size: tuple[int, int], learned: LearnedEmbedding) -> None:
        """Hook the ``Detect`` head's inputs and size D from one forward pass; ``learned`` is
        the ONNX's projection or branch, applied as the graph applies it."""
        import torch

        tap = install_embedding_tap(self._model, learned, self.device, self._dtype)
        with torch.cuda.stream(self._torch_stream), torch.inference_mode():
            try:
                self._model(torch.zeros((1, 3, *size), dtype=self._dtype, device=self.device))
            except (ValueError, RuntimeError) as exc:  # unreducible channels, an unfitting branch
                raise BackendError(f"embeddings: {exc}") from exc
            self.embedding_dim = int(tap.take().shape[-1])
        self._torch_stream.synchronize()
        self._tap = tap

    def _init_nms(
        self, post: PostprocessConfig, num_classes: int, size: tuple[int, int], max_batch: int
    ) -> None:
        """The GPU detection end and its pinned output slots, sized from one forward pass."""
        import torch

        from yolov8_trt_ros.core.backends.host_outputs import HostOutputs
        from yolov8_trt_ros.core.postprocess_gpu import GpuNms

        with torch.cuda.stream(self._torch_stream), torch.inference_mode():
            probe = self._model(torch.zeros((1, 3, *size), dtype=self._dtype, device=self.device))
        anchors = int(probe.shape[-1])
        if self._tap is not None:
            self._tap.take()  # the probe's: not an input of the next forward's gather
        self._nms = GpuNms(
            post.replace(num_classes=num_classes),
            num_classes,
            anchors,
            max_batch,
            self.device,
            embedding_dim=self.embedding_dim,
        )
        self._post_cfg = post
        row_bytes = int(self._nms.out.shape[1]) * 4
        self._host = HostOutputs({"packed": max_batch * row_bytes})
        self._torch_stream.synchronize()

    def update_postprocess(self, cfg: PostprocessConfig) -> None:
        """New run-time thresholds for the GPU NMS, in stream order: later batches use them.

        Cheap when ``cfg`` is the object of the last call (the pipeline passes its current one
        at every launch). A no-op on the raw-head form.
        """
        import torch

        if self._nms is None or cfg is self._post_cfg:
            return
        self._post_cfg = cfg
        with torch.cuda.stream(self._torch_stream):
            self._nms.configure(cfg)

    def _forward(self, x: Any) -> Any:
        """The network, then (end-to-end form) the GPU detection end: what a graph captures."""
        head = self._model(x)
        emb = self._tap.take() if self._tap is not None else None
        if self._nms is not None:
            return self._nms.enqueue(head, emb)
        return head if emb is None else (head, emb)

    def _graph_for(self, batch: int) -> tuple[Any, Any, Any]:
        """Capture (once per batch size) the forward pass on static buffers."""
        import torch

        if batch not in self._graphs:
            static_in = torch.zeros(
                (batch, 3, self.info.input_height, self.info.input_width),
                dtype=self._dtype,
                device=self.device,
            )
            with torch.cuda.stream(self._torch_stream), torch.inference_mode():
                for _ in range(2):  # warm-up: cuDNN picks its kernels outside the capture
                    self._forward(static_in)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, stream=self._torch_stream):
                    static_out = self._forward(static_in)
            self._graphs[batch] = (graph, static_in, static_out)
            self._keepalive[batch] = _cached_tensors(self._model)
            raw_exec = getattr(graph, "raw_cuda_graph_exec", None)  # torch >= 2.6
            if raw_exec is not None and self._nms is not None:
                from cuda.bindings import runtime as cudart

                try:
                    self._launchers[batch] = cudart.cudaGraphExec_t(int(raw_exec()))
                except Exception as exc:  # an older torch or cuda-python: replay() it is
                    LOG.info(
                        "no direct graph launch (%s: %s); using CUDAGraph.replay", type(exc).__name__, exc
                    )
            LOG.info("captured a CUDA graph for batch %d", batch)
        return self._graphs[batch]

    def _fast_infer(self, images: Any) -> EngineOutput | None:
        """The steady-state call with no torch on the host path, or None where it does not apply.

        For the preprocessor's output (a CUDA array already on this stream, the network's dtype
        and shape) once the batch's graph exists: one device-to-device copy into the graph's
        static input, ``cudaGraphLaunch`` of torch's instantiated graph (what ``replay()`` does,
        without the Python and dispatcher overhead: ~0.3 ms of host time per call went there),
        then the output copy. Any other input takes the general path.
        """
        if isinstance(images, np.ndarray) or type(images).__module__.startswith("torch"):
            return None
        cai = getattr(images, "__cuda_array_interface__", None)
        if not isinstance(cai, dict) or cai.get("stream") != self.stream or cai.get("strides") is not None:
            return None
        shape = tuple(cai["shape"])
        if len(shape) != 4 or cai["typestr"] != self._input_typestr:
            return None
        launcher = self._launchers.get(int(shape[0]))
        if launcher is None or shape[1:] != (3, self.info.input_height, self.info.input_width):
            return None
        from cuda.bindings import runtime as cudart

        from yolov8_trt_ros.core.backends.host_outputs import cuda_call

        batch = int(shape[0])
        _graph, static_in, static_out = self._graphs[batch]
        nbytes = static_in.numel() * static_in.element_size()
        kind = cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        cuda_call(
            cudart.cudaMemcpyAsync(static_in.data_ptr(), int(cai["data"][0]), nbytes, kind, self.stream)
        )
        cuda_call(cudart.cudaGraphLaunch(launcher, self.stream))
        return self._publish(static_out, batch)

    def infer(self, images: Any) -> EngineOutput:
        """Enqueue a batch; NMS results (pending until ``wait()``) or the raw head (see module doc)."""
        import torch

        if self._closed:
            raise BackendError("cuda backend is closed")
        if self._launchers:
            fast = self._fast_infer(images)
            if fast is not None:
                return fast
        tensor = self._as_tensor(images)
        batch = int(tensor.shape[0])
        caller = torch.cuda.current_stream(self.device)
        if isinstance(images, torch.Tensor) and images.is_cuda:
            self._torch_stream.wait_stream(caller)  # inputs written on the caller's stream
            images.record_stream(self._torch_stream)  # and not reused before we have read them
        with torch.cuda.stream(self._torch_stream), torch.inference_mode():
            if self._use_graph:
                graph, static_in, static_out = self._graph_for(batch)
                static_in.copy_(tensor, non_blocking=True)
                graph.replay()
                out = static_out
            else:
                out = self._forward(tensor.to(self.device, self._dtype, non_blocking=True))
            if self._nms is not None:
                return self._publish(out, batch)
            # Copies: the static outputs are overwritten by the next replay.
            head, emb = out if isinstance(out, tuple) else (out, None)
            head = head.to(torch.float32, copy=True)
            if emb is not None:
                emb = emb.transpose(1, 2).contiguous()  # [B, D, A], the ONNX output's layout
        caller.wait_stream(self._torch_stream)
        head.record_stream(caller)
        if emb is not None:
            emb.record_stream(caller)
        return EngineOutput(raw=head, embeddings=emb)

    def _publish(self, packed: Any, batch: int) -> EngineOutput:
        """One device-to-host copy of the packed NMS rows into a pinned slot, then its event."""
        host, nms = self._host, self._nms
        slot = host.acquire()
        row = int(packed.shape[1])
        host.copy_from_device(slot, "packed", int(packed.data_ptr()), batch * row * 4, self.stream)
        key = (id(slot), batch)
        views = self._views.get(key)
        if views is None:  # the slot's views for this batch size, made once
            from yolov8_trt_ros.core.postprocess_gpu import unpack, unpack_embeddings

            rows = slot.view("packed", np.dtype(np.float32), (batch, row))
            emb = None
            if nms.embedding_dim:
                emb = unpack_embeddings(rows, nms.max_detections, nms.embedding_dim)[1]
            views = self._views[key] = (rows, *unpack(rows, nms.max_detections), emb)
        rows, count, boxes, scores, classes, emb = views
        output = EngineOutput(
            nms_count=count, nms_boxes=boxes, nms_scores=scores, nms_classes=classes, embeddings=emb
        )
        detach = functools.partial(_detach, rows, nms.max_detections, nms.embedding_dim)
        return host.publish(slot, self.stream, output, detach)

    def close(self) -> None:
        import torch

        if self._closed:
            return
        self._closed = True
        self._torch_stream.synchronize()
        self._graphs.clear()
        self._launchers.clear()
        self._keepalive.clear()
        self._views.clear()
        if self._host is not None:
            self._host.close()
            self._host = None
        if self._nms is not None:
            self._nms.close()
            self._nms = None
        del self._model
        torch.cuda.empty_cache()
