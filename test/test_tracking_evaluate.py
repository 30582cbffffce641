"""scripts/evaluate_tracker.py: MOT reading and filtering, simulated detections, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def ev():
    pytest.importorskip("motmetrics")
    from scripts import evaluate_tracker  # the repository root is on sys.path (conftest.py)

    return evaluate_tracker


def _write_seq(root: Path, name: str, gt_rows: list[str], det_rows: list[str] | None = None) -> Path:
    seq = root / name
    (seq / "gt").mkdir(parents=True)
    (seq / "gt" / "gt.txt").write_text("\n".join(gt_rows) + "\n")
    (seq / "seqinfo.ini").write_text(
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate=25\nseqLength=3\nimWidth=1920\nimHeight=1080\nimExt=.jpg\n"
    )
    if det_rows is not None:
        (seq / "det").mkdir()
        (seq / "det" / "det.txt").write_text("\n".join(det_rows) + "\n")
    return seq


GT_ROWS = [
    "1,1,10,20,30,60,1,1,1.0",  # pedestrian, counted
    "1,2,100,20,30,60,0,1,1.0",  # conf 0: ignored region
    "1,3,200,20,30,60,1,7,0.5",  # static person (class 7)
    "2,1,12,20,30,60,1,1,0.8",
    "3,4,300,20,30,60,1,2,0.2",  # person on vehicle (class 2)
]


def test_mot17_ground_truth_filter(ev, tmp_path: Path):
    seq = ev.read_sequence(_write_seq(tmp_path, "MOT17-02-FRCNN", GT_ROWS))
    assert seq.ids.tolist() == [1, 1] and seq.frames.tolist() == [1, 2]
    assert (seq.n_frames, seq.frame_rate, seq.width, seq.height) == (3, 25.0, 1920, 1080)
    np.testing.assert_array_equal(seq.boxes[1], [12, 20, 30, 60])
    other = ev.read_sequence(_write_seq(tmp_path, "SYNTH-01", GT_ROWS))
    assert other.ids.tolist() == [1, 3, 1, 4]  # every class, conf 1 only
    assert other.class_ids.tolist() == [0, 6, 0, 1]
    forced = ev.read_sequence(tmp_path / "SYNTH-01", gt_filter="mot17")
    assert forced.ids.tolist() == [1, 1]
    assert [p.name for p in ev.find_sequences(tmp_path)] == ["MOT17-02-FRCNN", "SYNTH-01"]


def test_read_detections(ev, tmp_path: Path):
    det_rows = ["1,-1,10,20,30,60,0.4,-1,-1,-1", "1,-1,50,20,10,10,0.9,-1,-1,-1", "3,-1,5,5,10,20,0.7,3"]
    seq = ev.read_sequence(_write_seq(tmp_path, "MOT17-04-SDP", GT_ROWS, det_rows))
    dets = ev.read_detections(ev.detections_file("seq", seq), seq.n_frames)
    assert [len(d) for d in dets] == [2, 0, 1]
    np.testing.assert_allclose(dets[0].boxes, [[50, 20, 60, 30], [10, 20, 40, 80]])  # score order
    np.testing.assert_allclose(dets[0].scores, [0.9, 0.4])
    assert dets[0].class_ids.tolist() == [0, 0] and dets[2].class_ids.tolist() == [2]
    (tmp_path / "dets").mkdir()
    (tmp_path / "dets" / "MOT17-04-SDP.txt").write_text("2,-1,1,1,5,5,0.5\n")
    assert ev.detections_file(str(tmp_path / "dets"), seq).name == "MOT17-04-SDP.txt"
    with pytest.raises(FileNotFoundError, match="no detections"):
        ev.detections_file(str(tmp_path / "nowhere"), seq)


def test_simulated_detections_follow_the_noise_model(ev, tmp_path: Path):
    (seq_dir,) = ev.write_synthetic(tmp_path, 1, seed=3, n_frames=200, n_objects=8)
    seq = ev.read_sequence(seq_dir)
    noise = ev.NoiseConfig(fp_per_frame=0.0, miss_rate=0.0, jitter=0.0)
    dets = ev.simulate_detections(seq, noise, seed=0)
    assert len(dets) == seq.n_frames
    again = ev.simulate_detections(seq, noise, seed=0)
    assert all(
        np.array_equal(a.boxes, b.boxes) and np.array_equal(a.scores, b.scores)
        for a, b in zip(dets, again, strict=True)
    )
    n_dets = sum(len(d) for d in dets)
    visible = seq.visibility >= noise.occluded_visibility
    occluded = (seq.visibility >= noise.min_visibility) & ~visible
    # Without jitter the boxes are the gt boxes; every well visible object is found.
    assert n_dets >= visible.sum() and n_dets <= visible.sum() + occluded.sum()
    low = sum(int(((d.scores >= 0.1) & (d.scores < 0.5)).sum()) for d in dets)
    assert low > 0.5 * occluded.sum() * (1 - noise.occluded_miss_rate) * noise.occluded_low_score
    noisy = ev.simulate_detections(seq, ev.NoiseConfig(fp_per_frame=2.0), seed=0)
    assert sum(len(d) for d in noisy) > n_dets


def test_cli_writes_markdown(ev, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    pytest.importorskip("lap")
    md = tmp_path / "tracking.md"
    argv = [
        "--synthetic",
        "2",
        "--frames",
        "60",
        "--seed",
        "4",
        "--markdown",
        str(md),
        "--set",
        "track_buffer=20",
    ]
    assert ev.main(argv) == 0
    text = md.read_text()
    assert "SYNTH-01" in text and "SYNTH-02" in text and "**OVERALL**" in text
    assert "track_buffer=20" in text and "'track_buffer': 20" in text
    assert "MOTA ours" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------
# Wrong merges, embeddings, the ReID trackers
# ------------------------------------------------------------------------------------------------
BOX_A, BOX_B = [0.0, 0.0, 20.0, 40.0], [200.0, 0.0, 20.0, 40.0]


def _hand_sequence(ev, gt: list[tuple[int, int, list[float]]], n_frames: int):
    """A Sequence from (frame, gt id, xywh) rows."""
    return ev.Sequence(
        name="HAND",
        path=Path("."),
        n_frames=n_frames,
        frame_rate=30.0,
        width=640,
        height=480,
        frames=np.array([r[0] for r in gt], np.int64),
        ids=np.array([r[1] for r in gt], np.int64),
        boxes=np.array([r[2] for r in gt], np.float64).reshape(-1, 4),
        class_ids=np.zeros(len(gt), np.int64),
        visibility=np.ones(len(gt)),
    )


def _hyps(per_frame: list[list[tuple[int, list[float]]]]) -> list:
    return [
        (np.array([i for i, _ in f], np.int64), np.array([b for _, b in f], np.float64).reshape(-1, 4))
        for f in per_frame
    ]


def test_wrong_merges_on_hand_made_cases(ev):
    # A in frames 1-3, B in frames 4-6 (A gone), A again in 7-8.
    gt = [(f, 1, BOX_A) for f in (1, 2, 3, 7, 8)] + [(f, 2, BOX_B) for f in (4, 5, 6)]
    seq = _hand_sequence(ev, gt, 8)

    def merges(per_frame: list[list[tuple[int, list[float]]]]) -> tuple[int, int]:
        acc = ev.accumulate(seq, _hyps(per_frame))
        summary = ev.summarise([acc], ["HAND"])
        return ev.wrong_merges(acc), int(summary.loc["OVERALL", "wrong_merges"])

    a = [[(1, BOX_A)]] * 3
    b = [[(1, BOX_B)]] * 3
    # One id follows A, then B, then A again: one track id over two identities = one wrong merge.
    assert merges(a + b + [[(1, BOX_A)]] * 2) == (1, 1)
    # Each identity its own id, A re-found with its old id after the gap: no wrong merge.
    assert merges(a + [[(2, BOX_B)]] * 3 + [[(1, BOX_A)]] * 2) == (0, 0)
    # A re-appears under a new id (an ID switch, not a merge), B had its own.
    assert merges(a + [[(2, BOX_B)]] * 3 + [[(3, BOX_A)]] * 2) == (0, 0)
    # Id 1 takes A then B; id 2 takes B, then A after the gap: two ids over two identities each.
    two = a + b[:1] + [[(2, BOX_B)]] * 2 + [[(2, BOX_A)]] * 2
    assert merges(two) == (2, 2)  # id 1: A then B; id 2: B then A
    # A hypothesis that never reaches IoU 0.5 with anything is a false positive, not a merge.
    assert merges([[(1, [400.0, 300.0, 20.0, 40.0])]] * 8) == (0, 0)
    assert merges([[]] * 8) == (0, 0)


def test_hota_of_perfect_and_of_merged_tracks(ev):
    """TrackEval's HOTA where installed: 1 for the ground truth itself; ids swapped halfway keep
    DetA at 1 but cut AssA to a third."""
    if ev._hota_metric() is None:
        pytest.skip("trackeval not installed (pip install --no-deps -r requirements/nodeps.txt)")
    gt = [(f, 1, BOX_A) for f in range(1, 9)] + [(f, 2, BOX_B) for f in range(1, 9)]
    seq = _hand_sequence(ev, gt, 8)
    perfect = _hyps([[(1, BOX_A), (2, BOX_B)]] * 8)
    merged = _hyps([[(1, BOX_A), (2, BOX_B)]] * 4 + [[(2, BOX_A), (1, BOX_B)]] * 4)
    scores = ev.hota([seq], [perfect])
    assert scores is not None
    assert scores["HAND"]["HOTA"] == pytest.approx(1.0) and scores["OVERALL"]["HOTA"] == pytest.approx(1.0)
    worse = ev.hota([seq], [merged])
    assert worse is not None
    # Every match: 4 frames with its id (TPA) against 4 of its identity elsewhere (FNA) and 4 of
    # its id on the other identity (FPA): AssA = 4 / 12.
    assert worse["HAND"]["DetA"] == pytest.approx(1.0) and worse["HAND"]["AssA"] == pytest.approx(1 / 3)


def test_simulated_embeddings_follow_identities(ev, tmp_path: Path):
    (seq_dir,) = ev.write_synthetic(tmp_path, 1, seed=3, n_frames=60, n_objects=6, kinds=["crossing"])
    seq = ev.read_sequence(seq_dir)
    assert (seq.kind, seq.generator) == ("crossing", "2.0.0")
    noise = ev.NoiseConfig(fp_per_frame=1.0, miss_rate=0.0, jitter=0.0, embedding_noise=0.5)
    dets = ev.simulate_detections(seq, noise, seed=0)
    plain = ev.simulate_detections(seq, ev.NoiseConfig(fp_per_frame=1.0, miss_rate=0.0, jitter=0.0), 0)
    same, other = [], []
    for frame, d in enumerate(dets, start=1):
        assert d.embeddings is not None and d.embeddings.shape == (len(d), ev.EMBEDDING_DIM)
        np.testing.assert_allclose(np.linalg.norm(d.embeddings, axis=1), 1.0, rtol=1e-5)
        np.testing.assert_array_equal(d.boxes, plain[frame - 1].boxes)  # noise level leaves boxes alone
        rows = seq.rows_at(frame)
        ident = ev.identity_embeddings(0, seq.name, seq.ids[rows])
        # Without jitter a true positive's box is its gt box: pair them by box.
        for k, box in enumerate(d.boxes):
            hit = np.flatnonzero(np.all(np.abs(seq.boxes[rows, :2] - box[:2]) < 1e-3, axis=1))
            if len(hit):
                cos = ident @ d.embeddings[k]
                same.append(cos[hit[0]])
                other += np.delete(cos, hit[0]).tolist()
    assert len(same) > 100
    expected = 1.0 / np.sqrt(1.0 + 0.5**2)
    assert abs(np.median(same) - expected) < 0.05 and np.max(np.abs(other)) < 0.75


def test_read_detections_with_embeddings(ev, tmp_path: Path):
    det_rows = ["1,-1,10,20,30,60,0.4,1", "1,-1,50,20,10,10,0.9,2", "3,-1,5,5,10,20,0.7,3"]
    seq = ev.read_sequence(_write_seq(tmp_path, "SYNTH-01", GT_ROWS, det_rows))
    emb = np.eye(3, 8, dtype=np.float32)
    np.save(seq.path / "det" / "embeddings.npy", emb)
    dets = ev.read_detections(ev.detections_file("seq", seq), seq.n_frames)
    np.testing.assert_array_equal(dets[0].embeddings, emb[[1, 0]])  # sorted by score with the rows
    np.testing.assert_array_equal(dets[2].embeddings, emb[[2]])
    assert dets[1].embeddings is not None and dets[1].embeddings.shape == (0, 8)
    (tmp_path / "dets").mkdir()
    (tmp_path / "dets" / "SYNTH-01.txt").write_text("\n".join(det_rows) + "\n")
    assert ev.embeddings_file(tmp_path / "dets" / "SYNTH-01.txt").name == "SYNTH-01.embeddings.npy"
    assert ev.read_detections(tmp_path / "dets" / "SYNTH-01.txt", 3)[0].embeddings is None
    np.save(tmp_path / "dets" / "SYNTH-01.embeddings.npy", emb[:2])
    with pytest.raises(ValueError, match="embeddings of shape"):
        ev.read_detections(tmp_path / "dets" / "SYNTH-01.txt", 3)


def test_botsort_uses_the_embeddings(ev):
    """Two overlapping same-size boxes (IoU 0.6) whose embeddings swap at frame 20: ByteTrack
    keeps its ids on the boxes, BOTSORT (appearance fused with IoU within its proximity gate)
    moves them with the embeddings, so the feats really reach it."""
    pytest.importorskip("lap")
    from yolov8_trt_ros.core.config import TrackerConfig
    from yolov8_trt_ros.core.types import Detections

    e = np.eye(2, 8, dtype=np.float32)
    frames = []
    for t in range(30):
        a = [100.0 + t, 100.0, 140.0 + t, 180.0]
        b = [110.0 + t, 100.0, 150.0 + t, 180.0]
        frames.append(
            Detections(np.array([a, b]), np.array([0.9, 0.8]), np.zeros(2), e if t < 20 else e[::-1])
        )
    cfg = TrackerConfig()
    bot, byte = ev.BotSortTracker(cfg), ev.UltralyticsTracker(cfg)
    hyp_bot = [bot.update(d) for d in frames]
    hyp_byte = [byte.update(d) for d in frames]

    def id_of_left_box(hyps, t: int) -> int:
        ids, boxes = hyps[t]
        return int(ids[np.argmin(boxes[:, 0])])

    assert id_of_left_box(hyp_byte, 19) == id_of_left_box(hyp_byte, 25)
    assert id_of_left_box(hyp_bot, 19) != id_of_left_box(hyp_bot, 25)
    assert sorted(hyp_bot[25][0].tolist()) == sorted(hyp_bot[19][0].tolist())  # swapped, not new
    with pytest.raises(ValueError, match="needs embeddings"):
        bot.update(Detections(np.zeros((1, 4)), np.ones(1), np.zeros(1)))


def test_cli_all_trackers_on_simulated_embeddings(ev, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    pytest.importorskip("lap")
    md = tmp_path / "tracking.md"
    argv = ["--synthetic", "2", "--frames", "90", "--seed", "1", "--kinds", "reentry", "occlusion"]
    argv += ["--trackers", "ours", "ours-reid", "ultralytics", "botsort", "--markdown", str(md)]
    assert ev.main(argv) == 0
    text = md.read_text()
    for t in ("ours", "ours-reid", "ultralytics", "botsort"):
        assert f"| {t} |" in text and f"WM {t}" in text
    assert "kinds occlusion, reentry" in text and "tracking generator 2.0.0" in text
    assert "wrong merges" in capsys.readouterr().out


MODEL = Path(__file__).resolve().parents[1] / "models" / "test" / "yolov8n_synth.onnx"


@pytest.mark.slow
@pytest.mark.skipif(not MODEL.is_file(), reason="models/test/yolov8n_synth.onnx not present")
def test_harness_end_to_end_on_rendered_frames(ev, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """Render a short crossing sequence, detect it with the test model through the pipeline (ORT
    CPU) and track it with our ByteTrack and ultralytics' trackers; the model finds the objects
    (MOTA well above zero) and both ByteTracks agree, as on simulated detections."""
    pytest.importorskip("lap")
    pytest.importorskip("onnxruntime")
    from yolov8_trt_ros.datasets.tracking import generate_tracking_sequences

    generate_tracking_sequences(tmp_path / "seqs", 2, 1, 40, n_objects=4, kinds="crossing")
    md = tmp_path / "tracking.md"
    argv = ["--sequences", str(tmp_path / "seqs"), "--model", str(MODEL), "--markdown", str(md)]
    argv += ["--trackers", "ours", "ultralytics", "botsort"]
    assert ev.main(argv) == 0
    out = capsys.readouterr().out
    text = md.read_text()
    assert "SYNTH-01" in text and "kinds crossing" in text and "ONNX Runtime" in text
    seq = ev.read_sequence(tmp_path / "seqs" / "SYNTH-01")
    dets = ev.detect_with_model(seq, str(MODEL))
    result = ev.compare([seq], [dets], ev.TrackerConfig(), ["ours", "ultralytics"])
    ours, theirs = result.row("ours"), result.row("ultralytics")
    assert ours["mota"] > 0.5, ours
    assert abs(ours["mota"] - theirs["mota"]) < 0.02 and ours["num_switches"] == theirs["num_switches"]
    with_emb = dets[0].embeddings is not None
    assert ("| botsort |" in text) == with_emb and ("botsort skipped" in out) == (not with_emb)
