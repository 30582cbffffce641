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
