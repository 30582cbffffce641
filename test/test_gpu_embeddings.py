"""Appearance embeddings on the CUDA backend (issue 12): reduction, gather under NMS, ONNX Runtime.

The CPU half runs everywhere (torch CPU): the per-anchor reduction against a NumPy reference
and against ultralytics' ``get_obj_feats``, the hook on the real test model, the packed-row
layout, and the host step that hands gathered rows to ``Detections``. The GPU half (marked
``gpu``) checks the kernels and the backend: the gather under NMS against the per-anchor
embeddings at each kept anchor, the per-anchor embeddings against the NumPy reduction of the
same feature maps, and the embeddings of the same detections against ONNX Runtime on CPU
(cosine >= 0.99, the issue's criterion) once the test ONNX has its ``embeddings`` output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _embedding_refs import (
    iou_matrix,
    numpy_anchor_embeddings,
    numpy_branch_embeddings,
    onnxruntime_detections,
    random_branch,
    synthetic_batch,
    with_learned,
)

from yolov8_trt_ros.core.backends.cuda_backend import (
    EMBEDDINGS_OUTPUT,
    EmbeddingTap,
    anchor_embeddings,
    onnx_embeddings,
)
from yolov8_trt_ros.core.config import PostprocessConfig
from yolov8_trt_ros.core.embeddings import LearnedEmbedding
from yolov8_trt_ros.core.postprocess import postprocess
from yolov8_trt_ros.core.postprocess_gpu import row_words, unpack, unpack_embeddings
from yolov8_trt_ros.core.types import EngineOutput, Letterbox

REPO = Path(__file__).resolve().parents[1]
TEST_MODEL = REPO / "models/test/yolov8n_synth.onnx"


# ---- references ------------------------------------------------------------------------------
def pack_rows(
    count: np.ndarray,
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    anchors: np.ndarray,
    emb: np.ndarray,
) -> np.ndarray:
    """Packed rows as ``nms.cu`` lays them out (count, boxes, scores, classes, anchors, embeddings)."""
    batch, M, D = emb.shape
    rows = np.zeros((batch, row_words(M, D)), np.float32)
    ints = rows.view(np.int32)
    ints[:, 0] = count
    rows[:, 1 : 1 + 4 * M] = boxes.reshape(batch, -1)
    rows[:, 1 + 4 * M : 1 + 5 * M] = scores
    ints[:, 1 + 5 * M : 1 + 6 * M] = classes
    ints[:, 1 + 6 * M : 1 + 7 * M] = anchors
    rows[:, 1 + 7 * M :] = emb.reshape(batch, -1)
    return rows


def _feature_maps(
    rng: np.random.Generator, batch: int, channels=(64, 128, 256), sizes=(8, 4, 2)
) -> list[np.ndarray]:
    return [
        rng.standard_normal((batch, c, s, s + 1)).astype(np.float32)
        for c, s in zip(channels, sizes, strict=True)
    ]


# ---- CPU: the reduction, the hook, the rows, the host step -----------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_anchor_embeddings_match_numpy_and_ultralytics(seed: int) -> None:
    from ultralytics.models.yolo.detect.predict import DetectionPredictor

    rng = np.random.default_rng(seed)
    channels = [(64, 128, 256), (48, 96, 144), (32, 32, 64)][seed]
    feats = _feature_maps(rng, 2, channels)
    feats[1][1, :, 0, 0] = 0.0  # an all-zero cell: the eps keeps it zero, not NaN
    got = anchor_embeddings([torch.from_numpy(f) for f in feats])
    assert got.dtype == torch.float32 and tuple(got.shape) == (
        2,
        sum(f.shape[2] * f.shape[3] for f in feats),
        min(channels),
    )
    np.testing.assert_allclose(got.numpy(), numpy_anchor_embeddings(feats), rtol=0, atol=2e-6)
    norms = np.linalg.norm(got.numpy(), axis=-1)
    assert np.isfinite(got.numpy()).all()
    assert (np.abs(norms - 1) < 1e-5).sum() == norms.size - 1  # every cell but the zero one
    zero_anchor = feats[0].shape[2] * feats[0].shape[3]  # first cell of P4, image 1
    assert not got[1, zero_anchor].any()
    # ultralytics' own reduction (BoT-SORT's native features), indexed at every anchor, normalised
    idx = [torch.arange(got.shape[1])] * 2
    theirs = DetectionPredictor.get_obj_feats([torch.from_numpy(f) for f in feats], idx)
    ref = torch.nn.functional.normalize(torch.stack(theirs), dim=-1)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)


def test_anchor_embeddings_apply_the_projection_before_normalising() -> None:
    rng = np.random.default_rng()
    feats = _feature_maps(rng, 2)
    w = rng.standard_normal((64, 64)).astype(np.float32)
    got = anchor_embeddings([torch.from_numpy(f) for f in feats], torch.from_numpy(w)).numpy()
    ref = numpy_anchor_embeddings(feats).astype(np.float64) @ w  # normalising first only rescales
    ref /= np.linalg.norm(ref, axis=-1, keepdims=True)
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-5)


def test_anchor_embeddings_run_the_branch_as_its_convs() -> None:
    """The learned branch (``Conv 3x3 -> SiLU -> Conv 1x1`` per level, zero-padded borders)
    against the sums written out, on fresh random maps and weights."""
    rng = np.random.default_rng()
    feats = _feature_maps(rng, 2)
    branch = random_branch(rng, (64, 128, 256), hidden=32, dim=24)
    tensors = [tuple(torch.from_numpy(getattr(p, n)) for n in ("w1", "b1", "w2", "b2")) for p in branch]
    got = anchor_embeddings([torch.from_numpy(f) for f in feats], branch=tensors).numpy()
    assert got.shape == (2, sum(f.shape[2] * f.shape[3] for f in feats), 24)
    np.testing.assert_allclose(got, numpy_branch_embeddings(feats, branch), rtol=0, atol=2e-5)


def test_anchor_embeddings_refuse_channels_that_do_not_group() -> None:
    feats = [torch.zeros((1, 64, 2, 2)), torch.zeros((1, 96, 1, 1))]
    with pytest.raises(ValueError, match="multiples"):
        anchor_embeddings(feats)


def _cpu_test_model() -> tuple[Any, tuple[int, int]]:
    from yolov8_trt_ros.core.backends.model_info import read_model_info
    from yolov8_trt_ros.core.export import load_torch_model, prepare_for_export

    weights = TEST_MODEL.with_suffix(".pt")
    if not weights.is_file():
        pytest.skip(f"{weights} is missing")
    info = read_model_info(TEST_MODEL)
    size = (info.input_height, info.input_width)
    return prepare_for_export(load_torch_model(weights), size), size


def test_tap_reduces_the_detect_inputs_of_the_test_model() -> None:
    """The hook on the real head: its value is the NumPy reduction of the maps the head received,
    one row per anchor of the head's output."""
    model, size = _cpu_test_model()
    seen: list[np.ndarray] = []
    head = model.model[-1]
    head.register_forward_pre_hook(lambda _m, args: seen.extend(x.detach().numpy().copy() for x in args[0]))
    tap = EmbeddingTap()
    head.register_forward_pre_hook(tap)
    x, _ = synthetic_batch(size, 2)
    with torch.inference_mode():
        out = model(torch.from_numpy(x))
    emb = tap.take()
    assert [f.shape[1] for f in seen] == [64, 128, 256]
    assert tuple(emb.shape) == (2, out.shape[-1], 64)
    np.testing.assert_allclose(emb.numpy(), numpy_anchor_embeddings(seen), rtol=0, atol=2e-6)
    with pytest.raises(Exception, match="did not run"):
        tap.take()  # taken once: a stale value is never handed out twice


@pytest.mark.parametrize("early", [False, True])
def test_tap_runs_the_branch_the_onnx_carries_as_onnxruntime_does(early: bool, tmp_path: Path) -> None:
    """The backend's hooks (``install_embedding_tap``) on the real test model, on the CPU: with a
    learned branch, reading the early map or not, the per-anchor embeddings are ONNX Runtime's
    of the same ONNX (cosine >= 0.999 at every anchor)."""
    import onnx

    from yolov8_trt_ros.core.backends.cuda_backend import install_embedding_tap
    from yolov8_trt_ros.core.embeddings import learned_embedding

    model, size = _cpu_test_model()
    channels = (96, 160, 288) if early else (64, 128, 256)  # + model.2's 32 channels when early
    rng = np.random.default_rng()
    path = with_learned(TEST_MODEL, tmp_path, branch=random_branch(rng, channels, 32, 16))
    learned = learned_embedding(onnx.load(str(path)))
    assert (learned.early_feature is not None) == early
    tap = install_embedding_tap(model, learned, "cpu")
    x, _ = synthetic_batch(size, 2)
    with torch.inference_mode():
        model(torch.from_numpy(x))
    got = tap.take().numpy()
    _, ref = onnxruntime_detections(path, x, PostprocessConfig(num_classes=len(model.names)))
    assert got.shape == (2, ref.shape[2], 16)
    assert np.sum(got * ref.transpose(0, 2, 1), axis=-1).min() >= 0.999


def test_unpack_embeddings_reads_the_packed_rows() -> None:
    rng = np.random.default_rng(3)
    batch, M, D = 3, 7, 5
    count = np.array([0, 3, 7], np.int32)
    boxes = rng.random((batch, M, 4), dtype=np.float32)
    scores = rng.random((batch, M), dtype=np.float32)
    classes = rng.integers(0, 9, (batch, M)).astype(np.int32)
    anchors = rng.integers(0, 8400, (batch, M)).astype(np.int32)
    emb = rng.standard_normal((batch, M, D)).astype(np.float32)
    rows = pack_rows(count, boxes, scores, classes, anchors, emb)
    assert row_words(M) == 1 + 6 * M and rows.shape[1] == 1 + 6 * M + M + M * D
    got_count, got_boxes, got_scores, got_classes = unpack(rows, M)  # the old layout's prefix
    np.testing.assert_array_equal(got_count, count)
    np.testing.assert_array_equal(got_boxes, boxes)
    np.testing.assert_array_equal(got_scores, scores)
    np.testing.assert_array_equal(got_classes, classes)
    got_anchors, got_emb = unpack_embeddings(rows, M, D)
    np.testing.assert_array_equal(got_anchors, anchors)
    np.testing.assert_array_equal(got_emb, emb)
    assert np.shares_memory(got_emb, rows)  # views: the pinned slot is read in place
    with pytest.raises(ValueError, match="not rows"):
        unpack_embeddings(rows, M, D + 1)


def test_engine_nms_embeddings_follow_their_detections() -> None:
    """``postprocess`` of an NMS output keeps each kept row's embedding, also through the live
    threshold, the ``max_detections`` cut and the re-sort of an unsorted image."""
    rng = np.random.default_rng(4)
    batch, K, D = 3, 6, 4
    count = np.array([6, 2, 5], np.int32)
    boxes = np.sort(rng.random((batch, K, 4), dtype=np.float32) * 100, axis=-1)
    scores = np.array(
        [[0.9, 0.8, 0.5, 0.3, 0.2, 0.1], [0.7, 0.6, 0, 0, 0, 0], [0.2, 0.9, 0.4, 0.8, 0.3, 0]], np.float32
    )
    classes = rng.integers(0, 3, (batch, K)).astype(np.int32)
    emb = rng.standard_normal((batch, K, D)).astype(np.float32)
    lbs = [Letterbox.fit(100, 100, 100, 100)] * batch
    cfg = PostprocessConfig(num_classes=3, conf_threshold=0.25, max_detections=3)
    out = EngineOutput(
        nms_count=count, nms_boxes=boxes, nms_scores=scores, nms_classes=classes, embeddings=emb
    )
    dets = postprocess(out, lbs, cfg)
    expected = [[0, 1, 2], [0, 1], [1, 3, 2]]  # image 2 is unsorted: re-sorted, then cut to 3
    for det, rows, b in zip(dets, expected, range(batch), strict=True):
        assert det.embeddings is not None and det.embeddings.dtype == np.float32
        np.testing.assert_array_equal(det.scores, scores[b, rows])
        np.testing.assert_array_equal(det.embeddings, emb[b, rows])
    plain = postprocess(
        EngineOutput(nms_count=count, nms_boxes=boxes, nms_scores=scores, nms_classes=classes), lbs, cfg
    )
    assert all(d.embeddings is None for d in plain)


def test_onnx_embeddings_says_whether_the_output_is_declared(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    def model(outputs: list[str]) -> Path:
        nodes = [helper.make_node("Identity", ["images"], [name]) for name in outputs]
        graph = helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 4, 4])],
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 4, 4]) for n in outputs],
        )
        path = tmp_path / f"{'_'.join(outputs)}.onnx"
        onnx.save(helper.make_model(graph), str(path))
        return path

    assert onnx_embeddings(model(["output0", EMBEDDINGS_OUTPUT])) == (True, LearnedEmbedding())
    assert onnx_embeddings(model(["output0"])) == (False, LearnedEmbedding())
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    assert onnx_embeddings(broken) == (False, LearnedEmbedding())


# ---- GPU: kernels and backend ------------------------------------------------------------------
def _random_heads(rng: np.random.Generator, batch: int, classes: int, anchors: int) -> np.ndarray:
    """Crowded random heads with ties (the GPU NMS tests' kind): boxes in a 640 px square."""
    head = np.empty((batch, 4 + classes, anchors), np.float32)
    centres = rng.random((batch, 2, anchors), dtype=np.float32) * 640
    head[:, :2] = centres
    head[:, 2:4] = rng.random((batch, 2, anchors), dtype=np.float32) * 120 + 2
    head[:, 4:] = np.round(rng.random((batch, classes, anchors), dtype=np.float32), 2)  # ties
    return head


@pytest.mark.gpu
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_gpu_nms_gathers_each_kept_anchors_embedding(seed: int) -> None:
    """Each kept slot's embedding is the per-anchor row at its anchor, whose decoded box is the
    slot's box; detections are bit for bit those of the NMS without embeddings; zeros and -1
    past the count."""
    from yolov8_trt_ros.core.postprocess_gpu import GpuNms

    rng = np.random.default_rng(seed)
    batch, classes, anchors, D = [(1, 1, 500, 64), (3, 10, 2100, 64), (2, 80, 8400, 128), (4, 3, 300, 32)][
        seed
    ]
    head_np = _random_heads(rng, batch, classes, anchors)
    emb_np = rng.standard_normal((batch, anchors, D)).astype(np.float32)
    device = torch.device("cuda", 0)
    head, emb = torch.from_numpy(head_np).to(device), torch.from_numpy(emb_np).to(device)
    cfg = PostprocessConfig(num_classes=classes, conf_threshold=0.3, iou_threshold=0.5, max_detections=100)
    with_emb = GpuNms(cfg, classes, anchors, batch, device, embedding_dim=D)
    plain = GpuNms(cfg, classes, anchors, batch, device)
    rows = with_emb.enqueue(head, emb).cpu().numpy()
    ref_rows = plain.enqueue(head).cpu().numpy()
    with_emb.close()
    plain.close()
    M = cfg.max_detections
    np.testing.assert_array_equal(rows[:, : 1 + 6 * M].view(np.int32), ref_rows.view(np.int32))
    count, boxes, _scores, _classes = unpack(rows, M)
    kept_anchors, gathered = unpack_embeddings(rows, M, D)
    assert count.sum() > 0
    for b in range(batch):
        n = int(count[b])
        a = kept_anchors[b, :n]
        assert (a >= 0).all() and (a < anchors).all() and len(set(a.tolist())) == n
        np.testing.assert_array_equal(gathered[b, :n], emb_np[b, a])
        cx, cy, w, h = head_np[b, :4, a].T
        decoded = np.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), axis=1)
        np.testing.assert_array_equal(boxes[b, :n], decoded)
        assert (kept_anchors[b, n:] == -1).all() and not gathered[b, n:].any()
    needs_them = GpuNms(cfg, classes, anchors, batch, device, embedding_dim=D)
    with pytest.raises(ValueError, match="embeddings"):
        needs_them.enqueue(head)  # made with embeddings: refuses a call without them
    needs_them.close()


def _cuda(precision: str, **kw: Any) -> Any:
    from yolov8_trt_ros.core.backends.cuda_backend import CudaBackend
    from yolov8_trt_ros.core.config import EngineConfig

    if not TEST_MODEL.with_suffix(".pt").is_file():
        pytest.skip("needs models/test/yolov8n_synth.pt")
    post = kw.pop("post", PostprocessConfig(conf_threshold=0.05))
    cfg = EngineConfig(model_path=str(TEST_MODEL), precision=precision, max_batch_size=4, **kw)
    return CudaBackend(cfg, post, embeddings=True)


def _test_inputs(size: tuple[int, int]) -> tuple[np.ndarray, list[Letterbox]]:
    """Three synthetic frames and one fresh random image (letterboxed as the pipeline does)."""
    frames, lbs = synthetic_batch(size, 3)
    noise = np.random.default_rng().random((1, 3, *size), dtype=np.float32)
    return np.concatenate((frames, noise)), [*lbs, Letterbox.fit(size[1], size[0], size[1], size[0])]


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_per_anchor_embeddings_are_the_numpy_reduction_of_its_feature_maps(precision: str) -> None:
    """Raw form without graphs (so a second hook sees every call's maps): ``[B, D, A]``."""
    backend = _cuda(precision, end2end_nms=False, cuda_graph=False)
    seen: list[np.ndarray] = []
    backend._model.model[-1].register_forward_pre_hook(
        lambda _m, args: seen.extend(x.detach().float().cpu().numpy() for x in args[0])
    )
    x, _ = _test_inputs((backend.info.input_height, backend.info.input_width))
    out = backend.infer(torch.from_numpy(x).cuda())
    emb = out.embeddings
    assert isinstance(emb, torch.Tensor) and emb.is_cuda and emb.dtype == torch.float32
    assert tuple(emb.shape) == (len(x), backend.embedding_dim, out.raw.shape[-1])
    ref = numpy_anchor_embeddings(seen)  # [B, A, D]
    np.testing.assert_allclose(emb.cpu().numpy().transpose(0, 2, 1), ref, rtol=0, atol=2e-5)
    backend.close()


@pytest.mark.gpu
@pytest.mark.parametrize("graph", [True, False])
def test_cuda_end_to_end_embeddings_are_the_kept_anchors_rows(graph: bool) -> None:
    """End to end (graph replays, several batches in flight): each kept detection's embedding is
    the per-anchor embedding at its anchor, taken from the raw form of the same network."""
    e2e = _cuda("fp32", cuda_graph=graph)
    raw = _cuda("fp32", end2end_nms=False, cuda_graph=False)
    size = (e2e.info.input_height, e2e.info.input_width)
    x, _ = _test_inputs(size)
    xs = torch.from_numpy(x).cuda()
    ref = raw.infer(xs)
    per_anchor = ref.embeddings.cpu().numpy()  # [B, D, A]
    heads = ref.raw.cpu().numpy()
    M, D = e2e._nms.max_detections, e2e.embedding_dim
    outputs = [e2e.infer(xs) for _ in range(6)]  # more than the pinned slots, none waited for
    last = outputs[-1].wait()
    anchors = unpack_embeddings(e2e._nms.out[: len(x)].cpu().numpy(), M, D)[0]
    total = 0
    for out in outputs:
        out.wait()
        assert out.embeddings is not None and out.embeddings.shape == (len(x), M, D)
        np.testing.assert_array_equal(out.embeddings, last.embeddings)
        for b in range(len(x)):
            n = int(out.nms_count[b])
            total += n
            a = anchors[b, :n]
            np.testing.assert_allclose(out.embeddings[b, :n], per_anchor[b][:, a].T, rtol=0, atol=1e-4)
            np.testing.assert_allclose(
                out.nms_boxes[b, :n, :2], (heads[b, :2, a] - heads[b, 2:4, a] / 2), atol=0.05
            )
            assert not out.embeddings[b, n:].any()
    assert total > 0
    e2e.close()
    raw.close()


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("learned", "precision"),
    [("projection", "fp32"), ("branch", "fp32"), ("branch+early", "fp32"), ("branch+early", "fp16")],
)
def test_cuda_backend_applies_what_the_onnx_learned(learned: str, precision: str, tmp_path: Path) -> None:
    """A model whose embeddings carry a learned map or branch: the CUDA backend reads it from the
    ONNX and its per-anchor embeddings are ONNX Runtime's FP32 ones (cosine >= 0.99 at every
    anchor; in FP16, where the branch runs in half precision, at 99.9 % of them)."""
    from yolov8_trt_ros.core.backends.cuda_backend import CudaBackend
    from yolov8_trt_ros.core.config import EngineConfig

    if not TEST_MODEL.with_suffix(".pt").is_file():
        pytest.skip("needs models/test/yolov8n_synth.pt")
    rng = np.random.default_rng()
    if learned == "projection":
        model = with_learned(
            TEST_MODEL, tmp_path, projection=rng.standard_normal((64, 64)).astype(np.float32)
        )
        dim = 64
    else:
        dim = 48
        channels = (96, 160, 288) if learned == "branch+early" else (64, 128, 256)  # model.2: 32
        model = with_learned(TEST_MODEL, tmp_path, branch=random_branch(rng, channels, 96, dim))
    cfg = EngineConfig(model_path=str(model), precision=precision, max_batch_size=4, end2end_nms=False)
    backend = CudaBackend(cfg, PostprocessConfig(conf_threshold=0.25))
    assert backend.embedding_dim == dim
    x, _ = _test_inputs((backend.info.input_height, backend.info.input_width))
    per_anchor = backend.infer(torch.from_numpy(x).cuda()).embeddings.cpu().numpy()
    cfg_post = PostprocessConfig(num_classes=backend.info.num_classes, conf_threshold=0.25)
    _, ref = onnxruntime_detections(model, x, cfg_post)
    cos = np.sum(per_anchor * ref, axis=1)
    assert (cos.min() if precision == "fp32" else np.quantile(cos, 0.001)) >= 0.99, cos.min()
    if learned == "projection":
        _, plain = onnxruntime_detections(TEST_MODEL, x, cfg_post)
        assert np.quantile(np.sum(per_anchor * plain, axis=1), 0.5) < 0.9  # the map did change them
    backend.close()


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_embeddings_match_onnxruntime_on_the_same_detections(precision: str) -> None:
    """Same detections (same class, IoU >= 0.9): cosine >= 0.99; per anchor on every image too."""
    backend = _cuda(precision, post=PostprocessConfig(conf_threshold=0.25))
    raw = _cuda(precision, end2end_nms=False)
    size = (backend.info.input_height, backend.info.input_width)
    x, _ = _test_inputs(size)
    identity = [Letterbox.fit(size[1], size[0], size[1], size[0])] * len(x)
    cfg = PostprocessConfig(num_classes=backend.info.num_classes, conf_threshold=0.25)
    ref, ref_per_anchor = onnxruntime_detections(TEST_MODEL, x, cfg)
    xs = torch.from_numpy(x).cuda()
    per_anchor = raw.infer(xs).embeddings.cpu().numpy()
    cos = np.sum(per_anchor * ref_per_anchor, axis=1)  # [B, A]: unit rows
    # FP32 everywhere; FP16 features may turn a near-zero cell's direction, so a quantile there.
    low = float(cos.min() if precision == "fp32" else np.quantile(cos, 0.001))
    assert low >= 0.99, f"per-anchor cosine {low:.4f} (min {cos.min():.4f})"
    got = postprocess(backend.infer(xs), identity, cfg)
    matched = total = 0
    for (r_boxes, r_classes, r_emb), det in zip(ref, got, strict=True):
        total += len(r_boxes)
        if len(r_boxes) == 0 or len(det) == 0:
            continue
        assert det.embeddings is not None
        iou = iou_matrix(r_boxes, det.boxes)
        iou[r_classes[:, None] != det.class_ids[None, :]] = 0
        for i, j in enumerate(iou.argmax(axis=1)):
            if iou[i, j] >= 0.9:
                matched += 1
                cosine = float(np.dot(r_emb[i], det.embeddings[j]))
                assert cosine >= 0.99, f"detection {i}: cosine {cosine:.4f}"
    assert total > 0
    assert matched >= 0.95 * total, f"{matched}/{total} ONNX Runtime detections matched"
    backend.close()
    raw.close()
