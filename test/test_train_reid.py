"""The ReID fine-tune trains the vector the exported graph emits, at the anchors that detect."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ultralytics")

from scripts.evaluate_tracker import read_sequence  # noqa: E402
from scripts.train_reid import (  # noqa: E402
    BatchSource,
    SequenceFrames,
    distill_loss,
    load_detector,
    main,
    padded_ids,
    supcon_loss,
)
from yolov8_trt_ros.core.backends.cuda_backend import anchor_embeddings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODEL_PT = REPO / "models" / "test" / "yolov8n_synth.pt"
MODEL_ONNX = REPO / "models" / "test" / "yolov8n_synth.onnx"


@pytest.fixture(scope="module")
def sequences(tmp_path_factory) -> Path:
    """Two short rendered sequences of the project's generator (same objects in every frame)."""
    from yolov8_trt_ros.datasets.tracking import generate_tracking_sequences

    out = tmp_path_factory.mktemp("reid_seqs")
    generate_tracking_sequences(out, 7, 2, 6, 640, 480, 4, workers=1, kinds=["occlusion", "crossing"])
    return out


def test_anchor_embeddings_equal_the_exported_embeddings_output():
    """The training target is the ONNX's ``embeddings`` (the surgery), not a look-alike."""
    import onnxruntime as ort

    model, _, _ = load_detector(MODEL_PT, torch.device("cpu"))
    model.eval()
    x = np.random.default_rng().random((2, 3, 640, 640), dtype=np.float32)
    feats: list = []
    hook = model.model[-1].register_forward_pre_hook(lambda m, inp: feats.extend(inp[0]))
    with torch.no_grad():
        model(torch.from_numpy(x))
    hook.remove()
    ours = anchor_embeddings(feats).numpy()  # [B, A, D]
    sess = ort.InferenceSession(str(MODEL_ONNX), providers=["CPUExecutionProvider"])
    onnx_emb = sess.run(["embeddings"], {"images": x})[0].transpose(0, 2, 1)  # [B, D, A] -> [B, A, D]
    assert ours.shape == onnx_emb.shape == (2, 8400, 64)
    cos = (ours * onnx_emb).sum(-1)
    assert cos.min() > 0.999, cos.min()


def test_supcon_is_low_for_identity_clusters_and_high_for_noise():
    gen = torch.Generator().manual_seed(int(np.random.default_rng().integers(1 << 30)))
    labels = torch.arange(8).repeat_interleave(6)
    groups = torch.zeros_like(labels)
    centres = torch.nn.functional.normalize(torch.randn(8, 64, generator=gen), dim=1)
    clustered = torch.nn.functional.normalize(
        centres[labels] + 0.05 * torch.randn(48, 64, generator=gen), dim=1
    )
    noise = torch.nn.functional.normalize(torch.randn(48, 64, generator=gen), dim=1)
    low, high = supcon_loss(clustered, labels, groups), supcon_loss(noise, labels, groups)
    assert low < 0.5 * high
    assert float(high) > np.log(47) - 0.5  # about log(candidates) when nothing is learnt


def test_supcon_never_compares_two_sequences():
    """Sequences' ids are their own: the same id elsewhere is neither a positive nor a negative."""
    gen = torch.Generator().manual_seed(int(np.random.default_rng().integers(1 << 30)))
    emb = torch.nn.functional.normalize(torch.randn(40, 16, generator=gen), dim=1)
    labels = torch.randint(0, 5, (40,), generator=gen)
    groups = torch.cat([torch.zeros(24, dtype=torch.long), torch.ones(16, dtype=torch.long)])
    both = supcon_loss(emb, labels, groups)

    def per_sample_sum(sel: slice) -> tuple[float, int]:
        e, lab = emb[sel], labels[sel]
        n_with_pos = int(((lab[:, None] == lab[None, :]).sum(1) > 1).sum())
        return float(supcon_loss(e, lab, torch.zeros_like(lab))) * n_with_pos, n_with_pos

    (sa, na), (sb, nb) = per_sample_sum(slice(0, 24)), per_sample_sum(slice(24, 40))
    assert float(both) == pytest.approx((sa + sb) / (na + nb), rel=1e-5)
    # Changing the other sequence's vectors leaves the first sequence's terms alone.
    moved = emb.clone()
    moved[24:] = torch.nn.functional.normalize(torch.randn(16, 16, generator=gen), dim=1)
    sb2, _ = (float(supcon_loss(moved[24:], labels[24:], torch.zeros(16, dtype=torch.long))) * nb, nb)
    assert float(supcon_loss(moved, labels, groups)) == pytest.approx((sa + sb2) / (na + nb), rel=1e-5)


def test_supcon_without_positives_is_zero_with_a_gradient():
    emb = torch.nn.functional.normalize(torch.randn(5, 8), dim=1).requires_grad_(True)
    loss = supcon_loss(emb, torch.arange(5), torch.zeros(5, dtype=torch.long))
    loss.backward()
    assert float(loss.detach()) == 0.0 and emb.grad is not None


def test_padded_ids_follow_the_order_of_ultralytics_targets():
    """The identity of target ``k`` of image ``b`` is where the assigner's ``target_gt_idx`` points."""
    _, _, criterion = load_detector(MODEL_PT, torch.device("cpu"))
    rng = np.random.default_rng()
    n_img = 4
    batch_idx = torch.from_numpy(np.sort(rng.integers(0, n_img, 30)).astype(np.float32))  # as collated
    ids = torch.from_numpy(rng.integers(1, 1000, 30))
    batch = {"batch_idx": batch_idx, "ids": ids}
    # ultralytics pads each image's targets in file order; carry the ids through its own code as classes.
    targets = torch.cat([batch_idx[:, None], ids[:, None].float(), torch.rand(30, 4)], 1)
    padded = criterion.preprocess(targets, n_img, scale_tensor=torch.ones(4))
    ours = padded_ids(batch, n_img)
    for i in range(n_img):
        n = int((batch_idx == i).sum())
        assert torch.equal(ours[i, :n], padded[i, :n, 0].long())
        assert (ours[i, n:] == -1).all()


def test_labels_are_the_ground_truth_letterboxed(sequences):
    seq = read_sequence(sequences / "SYNTH-01")
    frames = SequenceFrames(seq, 640, 0.5, 0.0)
    image, lab = frames.load(2)
    assert image.shape == (640, 640, 3)
    assert (image[:80] == 114).all() and (image[560:] == 114).all()  # 480 rows centred: 80 px pad
    rows = seq.rows_at(3)
    rows = rows[seq.visibility[rows] >= 0.5]
    x, y, w, h = seq.boxes[rows].T
    x0, x1 = np.clip(x, 0, 640), np.clip(x + w, 0, 640)
    y0, y1 = np.clip(y, 0, 480), np.clip(y + h, 0, 480)
    keep = (x1 - x0 >= 2) & (y1 - y0 >= 2)
    assert sorted(lab.ids.tolist()) == sorted(seq.ids[rows][keep].tolist())
    order = np.argsort(lab.ids)
    want = np.argsort(seq.ids[rows][keep])
    np.testing.assert_allclose(lab.boxes[order, 0] * 640, ((x0 + x1) / 2)[keep][want], atol=1e-3)
    np.testing.assert_allclose(lab.boxes[order, 1] * 640, ((y0 + y1) / 2 + 80)[keep][want], atol=1e-3)
    np.testing.assert_allclose(lab.boxes[order, 3] * 640, (y1 - y0)[keep][want], atol=1e-3)


def test_a_batch_holds_each_sequence_at_several_times(sequences):
    seqs = [SequenceFrames(read_sequence(p), 640, 0.5, 0.0) for p in sorted(sequences.glob("SYNTH-*"))]
    batch = BatchSource(seqs, 2, 3, seed=5, flip=True)[11]
    assert batch["img"].shape == (6, 3, 640, 640) and batch["img"].dtype == torch.uint8
    assert batch["groups"].tolist().count(0) == 3 and batch["groups"].tolist().count(1) == 3
    assert len(batch["ids"]) == len(batch["batch_idx"]) == len(batch["cls"]) == len(batch["bboxes"])
    assert ((batch["bboxes"] >= 0) & (batch["bboxes"] <= 1)).all()
    again = BatchSource(seqs, 2, 3, seed=5, flip=True)[11]
    assert torch.equal(batch["img"], again["img"])  # seeded: a run can be repeated


@pytest.mark.slow
def test_two_steps_write_a_checkpoint_ultralytics_loads(sequences, tmp_path):
    from ultralytics import YOLO

    args = ["--weights", str(MODEL_PT), "--sequences", str(sequences), "--out", str(tmp_path)]
    args += ["--max-steps", "2", "--workers", "0", "--sequences-per-batch", "1", "--frames-per-sequence", "2"]
    rc = main([*args, "--log-every", "1"])
    assert rc == 0
    ckpt = tmp_path / "yolov8n_synth_reid.pt"
    before = YOLO(str(MODEL_PT)).model.state_dict()
    after = YOLO(str(ckpt)).model.state_dict()
    changed = [
        k for k in before if before[k].dtype.is_floating_point and not torch.equal(before[k], after[k])
    ]
    assert changed, "two optimiser steps changed no weight"
    info = torch.load(ckpt, map_location="cpu", weights_only=False)["reid_finetune"]
    assert info["steps"] == 2 and info["n_sequences"] == 2


def test_distill_loss_is_zero_for_the_teacher_itself_and_grows_with_change():
    gen = torch.Generator().manual_seed(int(np.random.default_rng().integers(1 << 30)))
    teacher = {
        "boxes": torch.randn(2, 64, 300, generator=gen),
        "scores": 4 * torch.randn(2, 10, 300, generator=gen),
    }
    assert abs(float(distill_loss(teacher, teacher))) < 1e-4
    small = {k: v + 0.1 * torch.randn(v.shape, generator=gen) for k, v in teacher.items()}
    large = {k: v + 1.0 * torch.randn(v.shape, generator=gen) for k, v in teacher.items()}
    assert 0 < float(distill_loss(small, teacher)) < float(distill_loss(large, teacher))


def _identity_auc(weights: Path, batch: dict) -> float:
    """P(other-identity distance > same-identity distance) of the embeddings at the assigner's anchors."""
    from scripts.train_reid import identity_samples

    model, _, criterion = load_detector(weights, torch.device("cpu"))
    model.eval()
    with torch.no_grad():
        preds = model(batch["img"].float() / 255.0)[1]
        targets = {k: batch[k] for k in ("batch_idx", "cls", "bboxes")}
        assigned = criterion.get_assigned_targets_and_loss(preds, targets)[0]
        ids = padded_ids(batch, len(batch["img"]))
        emb, lab, grp = identity_samples(
            anchor_embeddings(preds["feats"]), assigned[0], assigned[1], ids, batch["groups"], 4096
        )
    dist = 1.0 - emb @ emb.T
    same_seq = grp[:, None] == grp[None, :]
    same = dist[same_seq & (lab[:, None] == lab[None, :]) & ~torch.eye(len(emb), dtype=torch.bool)]
    other = dist[same_seq & (lab[:, None] != lab[None, :])]
    gen = torch.Generator().manual_seed(0)
    i, j = (
        torch.randint(len(same), (20000,), generator=gen),
        torch.randint(len(other), (20000,), generator=gen),
    )
    return float((other[j] > same[i]).float().mean())


@pytest.mark.slow
@pytest.mark.skipif(
    not (REPO / "models" / "test" / "yolov8n_synth_reid.pt").is_file(), reason="no fine-tuned model"
)
def test_the_fine_tuned_checkpoint_tells_identities_apart(tmp_path):
    """On unseen sequences (training used seed 1) the shipped fine-tune separates identities the
    original cannot: an object's embeddings closer to each other than to others'.

    Measured over four sequence seeds fixed before looking at their values, and judged on the
    mean: one 2-sequence batch is a small sample (a random seed once gave 0.737 against the 0.75
    bar while 12 others gave 0.81-0.96), so a per-draw bar made the test flaky.
    """
    from yolov8_trt_ros.datasets.tracking import generate_tracking_sequences

    scores = []
    for seed in (101, 102, 103, 104):
        root = tmp_path / str(seed)
        generate_tracking_sequences(
            root, seed, 2, 40, 640, 480, 6, workers=1, kinds=["crossing", "occlusion"]
        )
        seqs = [SequenceFrames(read_sequence(p), 640, 0.5, 0.0) for p in sorted(root.glob("SYNTH-*"))]
        batch = BatchSource(seqs, 2, 6, seed=0, flip=False)[0]
        original = _identity_auc(MODEL_PT, batch)
        tuned = _identity_auc(REPO / "models" / "test" / "yolov8n_synth_reid.pt", batch)
        scores.append((seed, original, tuned))
    original, tuned = (float(np.mean([s[k] for s in scores])) for k in (1, 2))
    assert tuned > 0.75 and tuned > original + 0.1, scores
    assert all(t > o for _, o, t in scores), scores  # better on every batch, not only on average
