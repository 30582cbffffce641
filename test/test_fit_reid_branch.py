"""The learned embedding branch (scripts/fit_reid_branch.py): what it trains on is what the graph
computes, and training separates identities it has not seen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from _yolo_models import TEST_IMGSZ, yaml_onnx  # noqa: E402
from scripts.evaluate_tracker import read_sequence, write_synthetic  # noqa: E402
from scripts.fit_reid_branch import Branch, embed_patches, fit, main, patch_model  # noqa: E402
from scripts.fit_reid_projection import SupConSchedule, labelled_embeddings  # noqa: E402
from yolov8_trt_ros.core.embeddings import (  # noqa: E402
    EMBEDDINGS_OUTPUT,
    add_embedding_output,
    embedding_branch,
    find_early_input,
    find_head_inputs,
    load_branch,
)


def _run(model: onnx.ModelProto, x: np.ndarray, extra: list[str] = ()) -> list[np.ndarray]:
    import onnxruntime as ort

    for name in extra:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run([EMBEDDINGS_OUTPUT, *extra], {"images": x})


@pytest.mark.parametrize("early", [False, True])
def test_patches_are_each_anchors_3x3_neighbourhood_and_its_level(early: bool) -> None:
    """With ``early``, each level's map is the head's input followed by model.2's output
    average-pooled to its cells, as the branch reads them."""
    model = onnx.load(str(yaml_onnx()))
    patched, channels = patch_model(model, early)
    head = find_head_inputs(model)
    early_input, _ = find_early_input(model)
    assert channels == [h.channels + (early_input.channels if early else 0) for h in head]
    x = np.random.default_rng().random((2, 3, TEST_IMGSZ, TEST_IMGSZ), dtype=np.float32)
    patches, *maps, first = _run(patched, x, [h.tensor for h in head] + [early_input.tensor])
    width = 9 * max(channels)
    assert patches.shape == (2, width + 1, sum(m.shape[2] * m.shape[3] for m in maps))
    start = 0
    for level, (f, c) in enumerate(zip(maps, channels, strict=True)):
        b, _, h, w = f.shape
        if early:
            k = first.shape[2] // h
            f = np.concatenate([f, first.reshape(b, -1, h, k, w, k).mean(axis=(3, 5))], axis=1)
        fp = np.pad(f, ((0, 0), (0, 0), (1, 1), (1, 1)))  # the conv's zero padding
        for y, xx in [(0, 0), (h - 1, w - 1), (h // 2, 1), (1, w // 2)]:
            a = start + y * w + xx
            want = np.concatenate([fp[:, :, y + dy, xx + dx] for dy in range(3) for dx in range(3)], axis=1)
            np.testing.assert_allclose(patches[:, : 9 * c, a], want, rtol=0, atol=1e-6)  # (dy, dx, channel)
            assert not patches[:, 9 * c : width, a].any()
            assert (patches[:, width, a] == level).all()
        start += h * w


@pytest.mark.parametrize("early", [False, True])
def test_exported_branch_in_the_graph_is_the_trained_module(early: bool) -> None:
    """The conv weights written to the ONNX (standardisation folded in) give, at every anchor,
    what the training module gives on that anchor's patch."""
    model = onnx.load(str(yaml_onnx()))
    patched, channels = patch_model(model, early)
    rng = np.random.default_rng()
    mean = [rng.standard_normal(9 * c).astype(np.float32) for c in channels]
    std = [rng.uniform(0.5, 2.0, 9 * c).astype(np.float32) for c in channels]
    branch = Branch(channels, hidden=32, dim=16, mean=mean, std=std).eval()
    x = rng.random((2, 3, TEST_IMGSZ, TEST_IMGSZ), dtype=np.float32)
    (patches,) = _run(patched, x)
    (emb,) = _run(add_embedding_output(model, branch=branch.export()), x)
    rows = torch.from_numpy(patches.transpose(0, 2, 1).reshape(-1, patches.shape[1]))
    with torch.no_grad():
        want = branch(rows, rows[:, -1].long()).numpy().reshape(2, -1, 16)
    np.testing.assert_allclose(emb.transpose(0, 2, 1), want, rtol=0, atol=2e-5)
    # --apply's mapping of a patch from the exported weights: the same vectors
    np.testing.assert_allclose(
        embed_patches(branch.export(), rows.numpy()).reshape(2, -1, 16), want, atol=2e-5
    )


def _fake_patches(seq_dir: Path, out: Path, channels: list[int], rng, looks: dict) -> None:
    """Every ground-truth box as a detection whose 'patch' holds its identity's look in a few
    inputs under noise elsewhere, at one level per identity."""
    seq = read_sequence(seq_dir)
    width = 9 * max(channels)
    rows, patches = [], []
    for frame in range(1, seq.n_frames + 1):
        for r in seq.rows_at(frame):
            x, y, w, h = seq.boxes[r]
            rows.append(f"{frame},-1,{x:.2f},{y:.2f},{w:.2f},{h:.2f},0.9,{seq.class_ids[r] + 1}")
            level = int(seq.ids[r]) % len(channels)
            look = looks.setdefault((seq.name, int(seq.ids[r]), level), rng.standard_normal(6))
            p = np.zeros(width + 1, np.float32)
            p[: 9 * channels[level]] = rng.standard_normal(9 * channels[level])
            p[:6] = look + 0.2 * rng.standard_normal(6)
            p[width] = level
            patches.append(p)
    det = out / seq.name / "det" / "det.txt"
    det.parent.mkdir(parents=True)
    det.write_text("\n".join(rows) + "\n")
    np.save(det.with_name("embeddings.npy"), np.asarray(patches, np.float32))


def _gap(emb: np.ndarray, ids: np.ndarray, level: np.ndarray) -> float:
    """Mean cosine distance between identities minus within one, over pairs of one level (each
    level has its own branch: even untrained ones tell levels apart)."""
    dist = 1.0 - emb @ emb.T
    pairs = level[:, None] == level[None, :]
    same = pairs & (ids[:, None] == ids[None, :])
    np.fill_diagonal(same, False)
    return float(dist[pairs & (ids[:, None] != ids[None, :])].mean() - dist[same].mean())


def test_fit_writes_the_branch_and_the_model(tmp_path) -> None:
    """``main`` from a kept patches directory: the branch's shapes follow the model's head."""
    import json

    model_path = yaml_onnx()
    channels = [h.channels for h in find_head_inputs(onnx.load(str(model_path)))]
    patches = tmp_path / "patches"
    rng = np.random.default_rng(0)
    for seq in write_synthetic(tmp_path / "train", 2, 4, 10, 6):
        _fake_patches(seq, patches, channels, rng, {})
    (patches / "channels.json").write_text(json.dumps(channels))  # detection done: main reuses it
    out = tmp_path / "branch.npz"
    onnx_out = tmp_path / "model.onnx"
    argv = ["--model", str(model_path), "--sequences", str(tmp_path / "train"), "--patches", str(patches)]
    argv += ["--out", str(out), "--onnx-out", str(onnx_out), "--steps", "5", "--hidden", "32", "--dim", "16"]
    assert main(argv) == 0
    levels = load_branch(out)
    assert [p.w1.shape for p in levels] == [(32, c, 3, 3) for c in channels]
    assert [p.w2.shape for p in levels] == [(16, 32, 1, 1)] * len(channels)
    assert json.loads(out.with_suffix(".json").read_text())["samples"] > 0
    written = onnx.load(str(onnx_out))
    assert EMBEDDINGS_OUTPUT in [o.name for o in written.graph.output]
    np.testing.assert_array_equal(embedding_branch(written)[0].w1, levels[0].w1)
    mapped = tmp_path / "mapped"
    assert (
        main(
            [
                "--model",
                str(model_path),
                "--branch",
                str(out),
                "--apply",
                str(patches),
                "--apply-out",
                str(mapped),
            ]
        )
        == 0
    )
    seq = sorted(patches.glob("*/det/det.txt"))[0].relative_to(patches)
    assert (mapped / seq).read_text() == (patches / seq).read_text()
    emb = np.load(mapped / seq.parent / "embeddings.npy")
    np.testing.assert_allclose(emb, embed_patches(levels, np.load(patches / seq.parent / "embeddings.npy")))
    assert emb.shape[1] == 16 and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_fit_separates_identities_it_has_not_seen(tmp_path) -> None:
    """Small channels so that samples outnumber inputs: the trained branch (read back from the
    conv weights it exports, computed as the graph does) separates a new sequence's identities."""
    from _embedding_refs import numpy_branch_embeddings

    channels = [4, 8]
    rng = np.random.default_rng(0)
    looks: dict = {}
    for seq in write_synthetic(tmp_path / "train", 4, 6, 60, 6):
        _fake_patches(seq, tmp_path / "patches", channels, rng, looks)
    (test_seq,) = write_synthetic(tmp_path / "test", 1, 6, 60, 6)
    _fake_patches(test_seq, tmp_path / "test_patches", channels, rng, {})
    data = [
        labelled_embeddings(s, tmp_path / "patches", 0.5, 0.5) for s in sorted((tmp_path / "train").iterdir())
    ]
    schedule = SupConSchedule(
        steps=400, per_batch=256, sequences_per_batch=4, lr=1e-3, temperature=0.1, seed=0, weight_decay=1e-2
    )
    branch, _ = fit(data, channels, 32, 16, schedule)
    levels = branch.export()
    x, ids = labelled_embeddings(test_seq, tmp_path / "test_patches", 0.5, 0.5)
    level = x[:, -1].astype(int)
    untrained = Branch(channels, 32, 16, *branch_standardisation(channels)).eval()
    with torch.no_grad():
        before = untrained(torch.from_numpy(x), torch.from_numpy(level)).numpy()
    after = np.empty_like(before)
    for i, (row, lv) in enumerate(zip(x, level, strict=True)):  # the convs written out, per cell
        feats = [np.zeros((1, c, 3, 3), np.float32) for c in channels]
        feats[lv] = row[: 9 * channels[lv]].reshape(3, 3, -1).transpose(2, 0, 1)[None]  # (dy, dx, c)
        after[i] = numpy_branch_embeddings(feats, levels)[0, lv * 9 + 4]  # that level's centre cell
    np.testing.assert_allclose(embed_patches(levels, x), after, atol=1e-5)
    gaps = _gap(before, ids, level), _gap(after, ids, level)
    assert gaps[0] < 0.2 < gaps[1], gaps


def branch_standardisation(channels: list[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    return [np.zeros(9 * c, np.float32) for c in channels], [np.ones(9 * c, np.float32) for c in channels]


def test_committed_branch_is_the_manifests_and_bakes_into_the_test_model() -> None:
    """models/test's branch: the file MANIFEST.json describes, it fits the test model's head and
    early map, and the baked model's detections are the test model's, bit for bit."""
    import hashlib
    import json

    from yolov8_trt_ros.core.embeddings import embedding_dim, learned_embedding, strip_embeddings

    root = Path(__file__).resolve().parents[1] / "models" / "test"
    path, model_path = root / "yolov8n_synth.reid_branch.npz", root / "yolov8n_synth.onnx"
    if not path.is_file() or not model_path.is_file():
        pytest.skip("models/test not present")
    manifest = json.loads((root / "MANIFEST.json").read_text())["reid_branch"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == manifest["sha256"]
    model = onnx.load(str(model_path))
    baked = add_embedding_output(strip_embeddings(model), branch=load_branch(path))
    assert embedding_dim(baked) == 64
    assert learned_embedding(baked).early_feature == find_early_input(model)[0].tensor
    x = np.random.default_rng().random((1, 3, 640, 640), dtype=np.float32)
    import onnxruntime as ort

    def run(m: onnx.ModelProto) -> list[np.ndarray]:
        session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(["output0", EMBEDDINGS_OUTPUT], {"images": x})

    (before, _), (after, emb) = run(model), run(baked)
    assert np.array_equal(before, after)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
