"""The appearance metric learnt on top of the detector's embeddings, with the detector frozen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from scripts.evaluate_tracker import read_detections, read_sequence, write_synthetic
from scripts.fit_reid_projection import labelled_embeddings, main, project

DIM = 16


def _detections(
    seq_dir: Path, out: Path, rng: np.random.Generator, signal: dict[tuple[str, int], np.ndarray]
) -> None:
    """Every visible ground-truth box as a detection (one sequence's ids keep their look), its
    embedding an identity direction in the first 4 dimensions drowned by noise in the others,
    plus one false detection per frame far from every box."""
    seq = read_sequence(seq_dir)
    rows, embs = [], []
    for frame in range(1, seq.n_frames + 1):
        for r in seq.rows_at(frame):
            x, y, w, h = seq.boxes[r]
            rows.append(f"{frame},-1,{x:.2f},{y:.2f},{w:.2f},{h:.2f},0.9,{seq.class_ids[r] + 1}")
            look = signal.setdefault((seq.name, int(seq.ids[r])), rng.standard_normal(4))
            embs.append(np.concatenate([look, 3.0 * rng.standard_normal(DIM - 4)]))
        rows.append(f"{frame},-1,-500,-500,10,10,0.9,1")
        embs.append(rng.standard_normal(DIM))
    det = out / seq.name / "det" / "det.txt"
    det.parent.mkdir(parents=True)
    det.write_text("\n".join(rows) + "\n")
    e = np.asarray(embs, np.float32)
    np.save(det.with_name("embeddings.npy"), e / np.linalg.norm(e, axis=1, keepdims=True))


def _gap(emb: np.ndarray, ids: np.ndarray) -> float:
    """Mean cosine distance between identities minus mean distance within one."""
    z = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    dist = 1.0 - z @ z.T
    same = ids[:, None] == ids[None, :]
    np.fill_diagonal(same, False)
    other = ids[:, None] != ids[None, :]
    return float(dist[other].mean() - dist[same].mean())


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path, Path, Path]:
    root = tmp_path_factory.mktemp("proj")
    rng = np.random.default_rng(0)
    signal: dict[tuple[str, int], np.ndarray] = {}
    train = write_synthetic(root / "train", 3, 5, 40, 6)
    for seq in train:
        _detections(seq, root / "train_dets", rng, signal)
    test = write_synthetic(root / "test", 1, 6, 40, 6)
    _detections(test[0], root / "test_dets", rng, signal)
    return root / "train", root / "train_dets", root / "test", root / "test_dets"


def test_labels_come_from_the_matched_ground_truth_only(data) -> None:
    train, dets, _, _ = data
    seq_dir = sorted(train.iterdir())[0]
    emb, ids = labelled_embeddings(seq_dir, dets, 0.5, 0.5)
    seq = read_sequence(seq_dir)
    per_frame = read_detections(dets / seq.name / "det" / "det.txt", seq.n_frames)
    assert sum(len(d.boxes) for d in per_frame) == len(seq.ids) + seq.n_frames
    # boxes at least half visible, each once; hidden ones and the false detections get no id
    assert len(ids) == len(emb) == int((seq.visibility >= 0.5).sum()) < len(seq.ids)
    assert set(ids.tolist()) == set(seq.ids[seq.visibility >= 0.5].tolist())


def test_fitted_projection_separates_identities_on_unseen_sequences(data, tmp_path) -> None:
    train, dets, test, test_dets = data
    w_path = tmp_path / "w.npy"
    out = tmp_path / "mapped"
    argv = ["--sequences", str(train), "--detections", str(dets), "--out", str(w_path), "--steps", "300"]
    assert main([*argv, "--apply", str(test_dets), "--apply-out", str(out)]) == 0
    w = np.load(w_path)
    assert w.shape == (DIM, DIM) and w.dtype == np.float32
    assert w_path.with_suffix(".json").is_file()
    seq_dir = sorted(test.iterdir())[0]
    before, ids = labelled_embeddings(seq_dir, test_dets, 0.5, 0.5)
    after, ids_after = labelled_embeddings(seq_dir, out, 0.5, 0.5)
    assert np.array_equal(ids, ids_after)
    np.testing.assert_allclose(after, project(before, w), atol=1e-5)  # row for row, as the graph maps
    assert _gap(before, ids) < 0.2 < _gap(after, ids)
    mapped = (out / seq_dir.name / "det" / "det.txt").read_text()
    assert mapped == (test_dets / seq_dir.name / "det" / "det.txt").read_text()


def test_projection_keeps_unit_rows_and_zero_rows() -> None:
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((5, DIM)).astype(np.float32)
    emb[2] = 0.0
    out = project(emb, rng.standard_normal((DIM, DIM)).astype(np.float32))
    norms = np.linalg.norm(out, axis=1)
    assert np.allclose(np.delete(norms, 2), 1.0, atol=1e-6) and not out[2].any()
