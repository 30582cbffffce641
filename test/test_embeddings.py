"""The ``embeddings`` output (core/embeddings.py) and its path to ``Detections.embeddings``.

References: the test model as first exported (its bytes from git history) for ``output0``, and
ultralytics' own ``DetectionPredictor.get_obj_feats`` on the ``.pt`` (fp32, CPU) for the
vectors, at every anchor and at the detections ultralytics' NMS keeps on a synthetic image.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from yolov8_trt_ros.core.config import FilterConfig, PostprocessConfig
from yolov8_trt_ros.core.embeddings import (
    EMBEDDINGS_OUTPUT,
    META_EMBEDDINGS,
    PROJECTION,
    EmbeddingGraphError,
    add_embedding_output,
    embedding_branch,
    embedding_dim,
    embedding_projection,
    find_head_inputs,
    load_branch,
    main,
    save_branch,
    strip_embeddings,
)
from yolov8_trt_ros.core.types import Detections, EngineOutput, Letterbox

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "models" / "test"
MODEL = MODEL_DIR / "yolov8n_synth.onnx"
PT = MODEL_DIR / "yolov8n_synth.pt"
INT8 = MODEL_DIR / "yolov8n_synth.int8.onnx"
#: The last commit whose test model had no embeddings output (MANIFEST.json's source sha256).
SOURCE_COMMIT = "6e9dd6a7125cdc11d3216ea8d9372cf36f2802d1"

needs_model = pytest.mark.skipif(not MODEL.is_file(), reason="models/test not present")


def _session(model: bytes | str | Path):
    import onnxruntime as ort

    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, providers=["CPUExecutionProvider"])


def _load(path: Path):
    import onnx

    return onnx.load(str(path))


@pytest.fixture(scope="module")
def source_onnx() -> bytes:
    """The test model's bytes before the output was added, checked against MANIFEST.json."""
    try:
        data = subprocess.run(
            ["git", "show", f"{SOURCE_COMMIT}:models/test/yolov8n_synth.onnx"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"git history with commit {SOURCE_COMMIT} not available (shallow clone?)")
    manifest = json.loads((MODEL_DIR / "MANIFEST.json").read_text())
    assert hashlib.sha256(data).hexdigest() == manifest["onnx_embeddings"]["source_onnx_sha256"]
    return data


# ---- the graph surgery ----------------------------------------------------------------------


@needs_model
def test_committed_model_is_the_surgery_of_the_original_and_output0_is_bit_identical(source_onnx):
    import onnx

    rebuilt = add_embedding_output(onnx.load_from_string(source_onnx)).SerializeToString()
    assert rebuilt == MODEL.read_bytes(), "the committed model is exactly the surgery's result"

    x = np.random.default_rng(0).random((2, 3, 640, 640), dtype=np.float32)
    (before,) = _session(source_onnx).run(["output0"], {"images": x})
    after, emb = _session(MODEL).run(["output0", EMBEDDINGS_OUTPUT], {"images": x})
    assert np.array_equal(before, after)  # bit-identical, not close
    assert emb.shape == (2, 64, 8400) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)  # rows over D


@needs_model
def test_surgery_only_appends(source_onnx):
    import onnx

    original = onnx.load_from_string(source_onnx)
    model = _load(MODEL)
    n = len(original.graph.node)
    assert [nd.SerializeToString() for nd in model.graph.node[:n]] == [
        nd.SerializeToString() for nd in original.graph.node
    ]
    added = model.graph.node[n:]
    assert all(nd.name.startswith("/embeddings/") for nd in added)
    head_inputs = {i for nd in added for i in nd.input if not i.startswith("/embeddings/")}
    assert head_inputs == {f"/model.{k}/cv2/act/Mul_output_0" for k in (15, 18, 21)}
    assert [o.name for o in model.graph.output] == ["output0", EMBEDDINGS_OUTPUT]
    meta = {p.key: p.value for p in model.metadata_props}
    original_meta = {p.key: p.value for p in original.metadata_props}
    assert {k: meta[k] for k in original_meta} == original_meta  # names, imgsz... kept
    info = json.loads(meta[META_EMBEDDINGS])
    assert info["dim"] == 64 and info["channels"] == [64, 128, 256]
    assert embedding_dim(model) == 64 and embedding_dim(original) is None


def _ultralytics_feats(model, x: np.ndarray):
    """Run the torch model capturing the Detect head's inputs, as ultralytics' track pre-hook."""
    import torch

    feats: dict[str, list] = {}
    handle = model.model[-1].register_forward_pre_hook(lambda m, inp: feats.__setitem__("x", list(inp[0])))
    try:
        with torch.no_grad():
            preds = model(torch.from_numpy(x))
    finally:
        handle.remove()
    return preds, feats["x"]


def _reference_per_anchor(feats, batch: int, anchors: int) -> np.ndarray:
    """ultralytics' get_obj_feats at every anchor, normalised as BoT-SORT does: ``[B, A, D]``."""
    import torch
    from ultralytics.models.yolo.detect.predict import DetectionPredictor

    rows = DetectionPredictor.get_obj_feats(feats, [torch.arange(anchors)] * batch)
    return torch.nn.functional.normalize(torch.stack(rows), dim=-1).numpy()


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_surgery_on_a_fresh_export_matches_ultralytics_at_every_anchor():
    """A seeded yolov8n.yaml exported at 320 (the backend tests' model): output0 unchanged,
    embeddings those of ultralytics' get_obj_feats on the same torch model."""
    import onnx

    from _yolo_models import TEST_IMGSZ, yaml_onnx, yaml_torch_model

    path = yaml_onnx()
    model = add_embedding_output(onnx.load(str(path)))
    x = np.random.default_rng(1).random((2, 3, TEST_IMGSZ, TEST_IMGSZ), dtype=np.float32)
    (before,) = _session(path).run(["output0"], {"images": x})
    after, emb = _session(model.SerializeToString()).run(["output0", EMBEDDINGS_OUTPUT], {"images": x})
    assert np.array_equal(before, after)
    anchors = (TEST_IMGSZ // 8) ** 2 + (TEST_IMGSZ // 16) ** 2 + (TEST_IMGSZ // 32) ** 2
    assert emb.shape == (2, 64, anchors)
    _, feats = _ultralytics_feats(yaml_torch_model(), x)
    ref = _reference_per_anchor(feats, 2, anchors)
    assert _cosine(emb.transpose(0, 2, 1), ref).min() >= 0.999


def test_projection_maps_the_reduction_before_the_normalisation(tmp_path):
    """A learned [D, D] map (fit_reid_projection.py): output0 unchanged, embeddings
    normalize(reduction @ W) at every anchor, W readable back from the graph; the CLI takes it."""
    import onnx

    from _yolo_models import TEST_IMGSZ, yaml_onnx, yaml_torch_model

    path = yaml_onnx()
    rng = np.random.default_rng()
    w = rng.standard_normal((64, 64)).astype(np.float32)
    model = add_embedding_output(onnx.load(str(path)), w)
    np.testing.assert_array_equal(embedding_projection(model), w)
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta[META_EMBEDDINGS])["projection"] == PROJECTION
    x = rng.random((2, 3, TEST_IMGSZ, TEST_IMGSZ), dtype=np.float32)
    (before,) = _session(path).run(["output0"], {"images": x})
    after, emb = _session(model.SerializeToString()).run(["output0", EMBEDDINGS_OUTPUT], {"images": x})
    assert np.array_equal(before, after)
    anchors = emb.shape[2]
    _, feats = _ultralytics_feats(yaml_torch_model(), x)
    ref = _reference_per_anchor(feats, 2, anchors) @ w  # normalising first only rescales
    assert _cosine(emb.transpose(0, 2, 1), ref).min() >= 0.999
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert embedding_projection(add_embedding_output(onnx.load(str(path)))) is None
    with pytest.raises(EmbeddingGraphError, match=r"projection of shape \(64, 32\)"):
        add_embedding_output(onnx.load(str(path)), w[:, :32])
    with pytest.raises(EmbeddingGraphError, match="non-finite"):
        add_embedding_output(onnx.load(str(path)), np.where(np.eye(64) > 0, np.nan, w).astype(np.float32))
    np.save(tmp_path / "w.npy", w)
    out = tmp_path / "projected.onnx"
    assert main([str(path), "-o", str(out), "--projection", str(tmp_path / "w.npy")]) == 0
    np.testing.assert_array_equal(embedding_projection(_load(out)), w)
    np.save(tmp_path / "bad.npy", w[:8])
    assert main([str(path), "-o", str(tmp_path / "bad.onnx"), "--projection", str(tmp_path / "bad.npy")]) == 2
    assert not (tmp_path / "bad.onnx").exists()


def test_branch_replaces_the_reduction_and_leaves_output0(tmp_path):
    """A learned branch (fit_reid_branch.py): output0 unchanged, embeddings the branch's convs
    of the head's input maps at every anchor (sums written out in float64), the weights readable
    back from the graph, stripped and redone by the CLI; misfits refused."""

    from _embedding_refs import numpy_branch_embeddings, random_branch

    from _yolo_models import TEST_IMGSZ, yaml_onnx, yaml_torch_model

    path = yaml_onnx()
    rng = np.random.default_rng()
    channels = tuple(h.channels for h in find_head_inputs(_load(path)))
    branch = random_branch(rng, channels, hidden=40, dim=24)
    model = add_embedding_output(_load(path), branch=branch)
    assert embedding_dim(model) == 24
    for got, want in zip(embedding_branch(model) or [], branch, strict=True):
        for name in ("w1", "b1", "w2", "b2"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    x = rng.random((2, 3, TEST_IMGSZ, TEST_IMGSZ), dtype=np.float32)
    (before,) = _session(path).run(["output0"], {"images": x})
    after, emb = _session(model.SerializeToString()).run(["output0", EMBEDDINGS_OUTPUT], {"images": x})
    assert np.array_equal(before, after)
    _, feats = _ultralytics_feats(yaml_torch_model(), x)
    ref = numpy_branch_embeddings([f.numpy() for f in feats], branch)
    np.testing.assert_allclose(emb.transpose(0, 2, 1), ref, rtol=0, atol=1e-5)
    assert embedding_branch(add_embedding_output(_load(path))) is None

    stripped = strip_embeddings(model)
    assert stripped.graph == _load(path).graph and embedding_dim(stripped) is None
    assert [p.key for p in stripped.metadata_props] == [p.key for p in _load(path).metadata_props]

    save_branch(tmp_path / "b.npz", branch)
    assert all(
        np.array_equal(a.w1, b.w1) for a, b in zip(load_branch(tmp_path / "b.npz"), branch, strict=True)
    )
    plain = tmp_path / "plain.onnx"
    assert main([str(path), "-o", str(plain)]) == 0
    out = tmp_path / "branch.onnx"
    assert main([str(plain), "-o", str(out), "--branch", str(tmp_path / "b.npz")]) == 2  # has one
    assert main([str(plain), "-o", str(out), "--branch", str(tmp_path / "b.npz"), "--replace"]) == 0
    assert embedding_dim(_load(out)) == 24 and embedding_branch(_load(out)) is not None

    with pytest.raises(EmbeddingGraphError, match="expected"):
        add_embedding_output(_load(path), branch=random_branch(rng, (8, *channels[1:]), 40, 24))
    with pytest.raises(EmbeddingGraphError, match="levels"):
        add_embedding_output(_load(path), branch=branch[:2])
    with pytest.raises(EmbeddingGraphError, match="not both"):
        add_embedding_output(_load(path), np.eye(24, dtype=np.float32), branch)
    nan = [type(branch[0])(branch[0].w1 * np.nan, *(branch[0].b1, branch[0].w2, branch[0].b2)), *branch[1:]]
    with pytest.raises(EmbeddingGraphError, match="non-finite"):
        add_embedding_output(_load(path), branch=nan)
    np.savez(tmp_path / "bad.npz", level0=np.zeros(3))
    assert main([str(path), "-o", str(tmp_path / "bad.onnx"), "--branch", str(tmp_path / "bad.npz")]) == 2
    assert not (tmp_path / "bad.onnx").exists()


@pytest.mark.skipif(not PT.is_file(), reason="models/test not present")
def test_embeddings_of_kept_detections_match_ultralytics_on_a_synthetic_image():
    """Our pipeline (ONNX Runtime, CPU NMS) against ultralytics' NMS + get_obj_feats on the .pt."""
    import torch
    from ultralytics.models.yolo.detect.predict import DetectionPredictor
    from ultralytics.utils import nms

    from yolov8_trt_ros.core.config import EngineConfig, TrackerConfig
    from yolov8_trt_ros.core.export import load_torch_model
    from yolov8_trt_ros.core.pipeline import Pipeline, PipelineConfig
    from yolov8_trt_ros.datasets.synthetic import render_detection_image

    image = render_detection_image(0, 7, 3)[0]
    cfg = PipelineConfig.default()
    cfg.engine = EngineConfig(backend="onnxruntime", model_path=str(MODEL))
    cfg.postprocess = cfg.postprocess.replace(conf_threshold=0.25, iou_threshold=0.45)
    cfg.tracker = TrackerConfig(enabled=False)
    pipeline = Pipeline.create(cfg, embeddings=True)
    try:
        x, (lb,) = pipeline.preprocessor([image], ["bgr8"])
        (result,) = pipeline.process([image], ["bgr8"])
    finally:
        pipeline.close()
    ours = result.detections
    assert len(ours) >= 3 and ours.embeddings is not None and ours.embeddings.shape == (len(ours), 64)

    model = load_torch_model(PT).float().eval().fuse(verbose=False)  # as AutoBackend on the CPU
    preds, feats = _ultralytics_feats(model, np.asarray(x))
    (kept,), (idxs,) = nms.non_max_suppression(preds, 0.25, 0.45, return_idxs=True)
    (ref,) = DetectionPredictor.get_obj_feats(feats, [idxs])
    ref = torch.nn.functional.normalize(ref, dim=1).numpy()
    ref_boxes = lb.to_source(kept[:, :4].numpy())
    assert len(ref_boxes) == len(ours)
    for i in range(len(ours)):  # pair by box: both sort by score, but near-ties may swap
        j = int(np.abs(ref_boxes - ours.boxes[i]).max(axis=1).argmin())
        assert np.abs(ref_boxes[j] - ours.boxes[i]).max() < 0.05
        assert int(kept[j, 5]) == ours.class_ids[i]
        assert _cosine(ours.embeddings[i], ref[j]) >= 0.999
    np.testing.assert_allclose(np.linalg.norm(ours.embeddings, axis=1), 1.0, atol=1e-5)
    # Distinct objects look different: the vectors are not all one direction.
    gram = ours.embeddings @ ours.embeddings.T
    assert gram[~np.eye(len(ours), dtype=bool)].min() < 0.99


def test_unrecognised_graphs_are_refused_with_what_is_missing(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from _yolo_models import yaml_onnx

    model = onnx.load(str(yaml_onnx()))
    stripped = onnx.ModelProto()
    stripped.CopyFrom(model)
    for node in stripped.graph.node:
        node.name = ""
    with pytest.raises(EmbeddingGraphError, match=r"no Detect head found.*cv2\.<i>/cv2\.<i>\.0/conv/Conv"):
        add_embedding_output(stripped)

    partial = onnx.ModelProto()
    partial.CopyFrom(model)
    (conv,) = (n for n in partial.graph.node if n.name == "/model.22/cv2.1/cv2.1.0/conv/Conv")
    conv.name = "renamed"
    with pytest.raises(EmbeddingGraphError, match=r"lacks level\(s\) \[1\]"):
        add_embedding_output(partial)

    with pytest.raises(EmbeddingGraphError, match="already has an output named 'embeddings'"):
        add_embedding_output(add_embedding_output(model))

    tiny = helper.make_model(
        helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"], name="relu")],
            "tiny",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
        )
    )
    bad = tmp_path / "tiny.onnx"
    bad.write_bytes(tiny.SerializeToString())
    assert main([str(bad), "-o", str(tmp_path / "out.onnx")]) == 2
    assert not (tmp_path / "out.onnx").exists()


def test_cli_writes_the_model_with_the_output(tmp_path, capsys):
    from _yolo_models import yaml_onnx

    out = tmp_path / "with_embeddings.onnx"
    assert main([str(yaml_onnx()), "-o", str(out)]) == 0
    assert "[B, 64, A]" in capsys.readouterr().out
    assert embedding_dim(_load(out)) == 64


# ---- backends: outputs by name, the model without the output ---------------------------------


def _without_embeddings(path: Path, tmp_path: Path) -> Path:
    """The same model with the ``embeddings`` output dropped (ORT then prunes its nodes)."""
    model = _load(path)
    keep = [o for o in model.graph.output if o.name != EMBEDDINGS_OUTPUT]
    del model.graph.output[:]
    model.graph.output.extend(keep)
    out = tmp_path / "no_embeddings.onnx"
    out.write_bytes(model.SerializeToString())
    return out


@needs_model
def test_model_info_reads_the_output_by_name(tmp_path):
    from yolov8_trt_ros.core.backends.model_info import read_model_info
    from yolov8_trt_ros.core.backends.onnxruntime_backend import OnnxRuntimeBackend
    from yolov8_trt_ros.core.config import EngineConfig

    info = read_model_info(MODEL)
    assert (info.output_name, info.embedding_output, info.embedding_dim) == ("output0", "embeddings", 64)
    # Outputs in the other order: still picked by name.
    model = _load(MODEL)
    outputs = list(model.graph.output)
    del model.graph.output[:]
    model.graph.output.extend(outputs[::-1])
    swapped = tmp_path / "swapped.onnx"
    swapped.write_bytes(model.SerializeToString())
    info = read_model_info(swapped)
    assert (info.output_name, info.embedding_dim, info.num_classes) == ("output0", 64, 10)
    backend = OnnxRuntimeBackend(
        EngineConfig(backend="onnxruntime", model_path=str(swapped), max_batch_size=2)
    )
    x = np.random.default_rng(2).random((2, 3, 640, 640), dtype=np.float32)
    out = backend.infer(x)
    assert out.raw is not None and out.raw.shape == (2, 14, 8400)
    assert out.embeddings is not None and out.embeddings.shape == (2, 64, 8400)
    ref_raw, ref_emb = _session(MODEL).run(["output0", "embeddings"], {"images": x})
    assert np.array_equal(out.raw, ref_raw) and np.array_equal(out.embeddings, ref_emb)


@needs_model
def test_model_without_the_output_gives_none_and_the_same_detections(tmp_path):
    from yolov8_trt_ros.core.backends.model_info import read_model_info
    from yolov8_trt_ros.core.config import EngineConfig, TrackerConfig
    from yolov8_trt_ros.core.pipeline import Pipeline, PipelineConfig
    from yolov8_trt_ros.datasets.synthetic import render_detection_image

    plain = _without_embeddings(MODEL, tmp_path)
    assert read_model_info(plain).embedding_dim is None
    if INT8.is_file():  # the committed INT8 model has no embeddings: it must load as such
        assert read_model_info(INT8).embedding_dim is None

    images = [render_detection_image(0, 7, i)[0] for i in (3, 4)]
    results = {}
    for name, path in (("with", MODEL), ("without", plain)):
        cfg = PipelineConfig.default()
        cfg.engine = EngineConfig(backend="onnxruntime", model_path=str(path), max_batch_size=2)
        cfg.tracker = TrackerConfig(enabled=True)
        pipeline = Pipeline.create(cfg, embeddings=True)
        try:
            results[name] = pipeline.process(images, ["bgr8", "bgr8"], streams=["a", "b"])
            raw = pipeline.backend.infer(np.zeros((1, 3, 640, 640), np.float32))
            assert (raw.embeddings is None) == (name == "without")
        finally:
            pipeline.close()
    for w, wo in zip(results["with"], results["without"], strict=True):
        assert len(w.detections) > 0
        np.testing.assert_array_equal(w.detections.boxes, wo.detections.boxes)
        np.testing.assert_array_equal(w.detections.scores, wo.detections.scores)
        np.testing.assert_array_equal(w.detections.class_ids, wo.detections.class_ids)
        assert w.detections.embeddings is not None and wo.detections.embeddings is None
        assert [t.box_xyxy for t in w.tracks or []] == [t.box_xyxy for t in wo.tracks or []]


# ---- postprocess: the gather at the anchors NMS keeps -----------------------------------------

D = 8


def _unit(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    v = rng.standard_normal(shape).astype(np.float32)
    return v / np.linalg.norm(v, axis=-2 if len(shape) == 3 else -1, keepdims=True)


def _known_winners() -> tuple[np.ndarray, np.ndarray, dict[int, list[int]]]:
    """Two images of 50 anchors, 3 classes: duplicates that NMS must suppress, and the winners.

    Image 0: anchors 7 (0.9) and 31 (0.8) overlap (IoU 0.82, same class) -> 7 wins; anchor 12
    (0.7) elsewhere; anchor 3 overlaps 12 but is another class (kept, class-wise NMS); anchor 40
    (0.1) under the threshold. Image 1: anchor 44 (0.95) beats anchor 2 (0.6), anchor 20 alone.
    """
    raw = np.zeros((2, 4 + 3, 50), np.float32)
    raw[:, 0:4] = np.array([500.0, 500.0, 4.0, 4.0], np.float32)[None, :, None]  # far away, no score

    def put(b: int, a: int, box: tuple[float, float, float, float], cls: int, score: float) -> None:
        raw[b, 0:4, a] = box
        raw[b, 4 + cls, a] = score

    put(0, 7, (100, 100, 40, 40), 0, 0.9)
    put(0, 31, (102, 101, 40, 40), 0, 0.8)
    put(0, 12, (300, 200, 60, 30), 1, 0.7)
    put(0, 3, (301, 200, 60, 30), 2, 0.65)
    put(0, 40, (50, 400, 20, 20), 1, 0.1)
    put(1, 44, (200, 300, 50, 80), 2, 0.95)
    put(1, 2, (203, 302, 50, 80), 2, 0.6)
    put(1, 20, (400, 100, 10, 10), 0, 0.5)
    return raw, _unit(np.random.default_rng(5), (2, D, 50)), {0: [7, 12, 3], 1: [44, 20]}


def _letterboxes(n: int) -> list[Letterbox]:
    return [Letterbox.fit(640, 480, 640, 640)] * n


def _check_winners(dets: list[Detections], emb: np.ndarray, winners: dict[int, list[int]]) -> None:
    for b, d in enumerate(dets):
        assert d.embeddings is not None
        np.testing.assert_array_equal(d.embeddings, emb[b][:, winners[b]].T)


def test_numpy_postprocess_gathers_the_winning_anchors():
    from yolov8_trt_ros.core.postprocess import postprocess

    raw, emb, winners = _known_winners()
    cfg = PostprocessConfig(conf_threshold=0.25, iou_threshold=0.45, num_classes=3)
    dets = postprocess(EngineOutput(raw=raw, embeddings=emb), _letterboxes(2), cfg)
    _check_winners(dets, emb, winners)
    assert postprocess(EngineOutput(raw=raw), _letterboxes(2), cfg)[0].embeddings is None
    with pytest.raises(ValueError, match="embeddings of shape"):
        postprocess(EngineOutput(raw=raw, embeddings=emb[:, :, :40]), _letterboxes(2), cfg)


@pytest.mark.parametrize("path", ["host", "device"])
def test_torch_postprocess_gathers_the_winning_anchors(path, monkeypatch):
    import torch
    from ultralytics.utils.nms import TorchNMS

    from yolov8_trt_ros.core import postprocess as post

    monkeypatch.setattr(post, "_torchvision_nms", lambda: TorchNMS.nms)  # no torchvision on CPU here
    monkeypatch.setattr(post, "HOST_NMS_MAX_CANDIDATES", -1 if path == "device" else 10**9)
    raw, emb, winners = _known_winners()
    cfg = PostprocessConfig(conf_threshold=0.25, iou_threshold=0.45, num_classes=3)
    dets = post.postprocess_torch(torch.from_numpy(raw), _letterboxes(2), cfg, torch.from_numpy(emb))
    _check_winners(dets, emb, winners)


@pytest.mark.parametrize("seed", range(4))
def test_every_path_gathers_the_same_embeddings_on_random_heads(seed, monkeypatch):
    """Many candidates, caps and ties: each detection's vector is its own anchor's, on all paths."""
    import torch
    from ultralytics.utils.nms import TorchNMS

    from yolov8_trt_ros.core import postprocess as post

    monkeypatch.setattr(post, "_torchvision_nms", lambda: TorchNMS.nms)
    rng = np.random.default_rng(40 + seed)
    batch, classes, anchors = 3, 4, 500
    raw = np.empty((batch, 4 + classes, anchors), np.float32)
    raw[:, 0:2] = rng.uniform(0, 640, (batch, 2, anchors))
    raw[:, 2:4] = rng.uniform(4, 150, (batch, 2, anchors))
    raw[:, 4:] = rng.uniform(0, 1, (batch, classes, anchors)) ** 3
    emb = _unit(rng, (batch, D, anchors))
    cfg = PostprocessConfig(
        conf_threshold=0.2,
        iou_threshold=0.5,
        max_detections=int(rng.choice([10, 300])),
        pre_nms_top_k=int(rng.choice([80, 30000])),
        class_agnostic=bool(seed % 2),
        num_classes=classes,
    )
    lbs = _letterboxes(batch)
    ref = post.postprocess(EngineOutput(raw=raw, embeddings=emb), lbs, cfg)
    for b, d in enumerate(ref):  # the anchor of each detection, found by its (unique) score
        assert d.embeddings is not None and len(d) > 0
        anchor = [int(np.flatnonzero(raw[b, 4:].max(axis=0) == s)[0]) for s in d.scores]
        np.testing.assert_array_equal(d.embeddings, emb[b][:, anchor].T)
    for path in ("host", "device"):
        monkeypatch.setattr(post, "HOST_NMS_MAX_CANDIDATES", -1 if path == "device" else 10**9)
        got = post.postprocess_torch(torch.from_numpy(raw), lbs, cfg, torch.from_numpy(emb))
        for g, r in zip(got, ref, strict=True):
            np.testing.assert_array_equal(g.boxes, r.boxes)
            np.testing.assert_array_equal(g.embeddings, r.embeddings)


def test_engine_nms_embeddings_follow_the_selection():
    """``[B, K, D]`` gathered in the engine: rows follow the threshold, the cap and a re-sort."""
    from yolov8_trt_ros.core.postprocess import postprocess

    rng = np.random.default_rng(6)
    k = 6
    boxes = np.tile(np.array([10, 10, 50, 60], np.float32), (2, k, 1)) + rng.uniform(0, 300, (2, k, 1))
    scores = np.array([[0.9, 0.8, 0.3, 0.2, 0.0, 0.0], [0.5, 0.7, 0.6, 0.1, 0.0, 0.0]], np.float32)
    out = EngineOutput(
        nms_count=np.array([4, 4], np.int32),
        nms_boxes=boxes.astype(np.float32),
        nms_scores=scores,
        nms_classes=np.zeros((2, k), np.int32),
        embeddings=_unit(rng, (2, k, D)),
    )
    cfg = PostprocessConfig(conf_threshold=0.25, max_detections=2, num_classes=1)
    d0, d1 = postprocess(out, _letterboxes(2), cfg)
    assert out.embeddings is not None
    np.testing.assert_array_equal(d0.embeddings, out.embeddings[0, [0, 1]])  # 0.9, 0.8
    np.testing.assert_array_equal(d1.embeddings, out.embeddings[1, [1, 2]])  # unsorted: 0.7, 0.6
    out.embeddings = out.embeddings[:, :, :, None]
    with pytest.raises(ValueError, match=r"must be \[B, K, D\]"):
        postprocess(out, _letterboxes(2), cfg)


def test_filters_keep_embeddings_aligned():
    from yolov8_trt_ros.core.filters import DetectionFilter

    rng = np.random.default_rng(7)
    n = 12
    xy = rng.uniform(0, 500, (n, 2))
    dets = Detections(
        np.concatenate([xy, xy + 40], axis=1),
        np.sort(rng.uniform(0.3, 1.0, n))[::-1],
        rng.integers(0, 3, n),
        _unit(rng, (n, D)),
    )
    assert dets.embeddings is not None
    filt = DetectionFilter(FilterConfig(classes=[0, 2], class_thresholds={2: 0.6}), conf_threshold=0.25)
    out = filt(dets)
    assert 0 < len(out) < n and out.embeddings is not None
    for i in range(len(out)):  # each kept row still carries its own vector
        (j,) = np.flatnonzero((dets.boxes == out.boxes[i]).all(axis=1))
        np.testing.assert_array_equal(out.embeddings[i], dets.embeddings[j])


# ---- scripts/detect_sequences.py: det.txt with embeddings.npy beside it ----------------------


@needs_model
def test_detect_sequences_saves_embeddings_row_by_row(tmp_path, capsys):
    import cv2

    from scripts.detect_sequences import main as detect_main
    from yolov8_trt_ros.core.backends.onnxruntime_backend import OnnxRuntimeBackend
    from yolov8_trt_ros.core.config import EngineConfig, PreprocessConfig
    from yolov8_trt_ros.core.preprocess import CpuPreprocessor
    from yolov8_trt_ros.datasets.tracking import generate_tracking_sequences

    (seq,) = generate_tracking_sequences(tmp_path / "seqs", seed=0, n_sequences=1, n_frames=3)
    out = tmp_path / "dets"
    assert detect_main(["--sequences", str(seq), "--out", str(out), "--conf", "0.25"]) == 0
    det_dir = out / seq.name / "det"
    table = np.loadtxt(det_dir / "det.txt", delimiter=",", ndmin=2)
    emb = np.load(det_dir / "embeddings.npy")
    assert emb.dtype == np.float32 and emb.shape == (len(table), 64) and len(table) > 3
    # Row i is the vector of det.txt's row i: the ORT embedding at the anchor whose box it is.
    backend = OnnxRuntimeBackend(EngineConfig(backend="onnxruntime", model_path=str(MODEL)))
    preprocess = CpuPreprocessor(PreprocessConfig())
    for frame in np.unique(table[:, 0]).astype(int):
        x, (lb,) = preprocess([cv2.imread(str(seq / "img1" / f"{frame:06d}.jpg"))], ["bgr8"])
        result = backend.infer(x)
        assert result.raw is not None and result.embeddings is not None
        cx, cy, w, h = result.raw[0, :4]
        boxes = lb.to_source(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1))
        for r in np.flatnonzero(table[:, 0] == frame):
            x1, y1, bw, bh = table[r, 2:6]
            anchor = int(np.abs(boxes - (x1, y1, x1 + bw, y1 + bh)).max(axis=1).argmin())
            assert np.abs(boxes[anchor] - (x1, y1, x1 + bw, y1 + bh)).max() < 0.02
            assert _cosine(emb[r], result.embeddings[0, :, anchor]) > 0.9999
    # A model without the output: det.txt only, and a stale .npy from before is removed.
    plain = _without_embeddings(MODEL, tmp_path)
    assert detect_main(["--sequences", str(seq), "--out", str(out), "--model", str(plain)]) == 0
    assert (det_dir / "det.txt").is_file() and not (det_dir / "embeddings.npy").exists()
    assert "no embeddings" in capsys.readouterr().out
