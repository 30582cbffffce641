"""The synthetic data generator and the test model trained on it (models/test/).

Datasets here are tiny (a handful of images, short sequences) so the module runs in seconds.
"""

from __future__ import annotations

import configparser
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolov8_trt_ros.datasets import (
    CLASS_NAMES,
    GENERATOR_VERSION,
    SceneConfig,
    generate_detection_dataset,
    generate_tracking_sequences,
    render_detection_image,
    tracking_ground_truth,
)
from yolov8_trt_ros.datasets.synthetic import PHOTO_FILES, available_photos

W, H = 320, 240
SIZES = {"train": 3, "val": 5, "calib": 2}


def _labels(root: Path) -> dict[str, bytes]:
    files = [*sorted((root / "labels").rglob("*.txt")), root / "annotations" / "instances_val.json"]
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


@pytest.fixture(scope="module")
def det_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("det")
    return generate_detection_dataset(out, 7, SIZES["train"], SIZES["val"], SIZES["calib"], W, H, workers=2)


def test_labels_byte_identical_across_runs_and_worker_counts(det_root: Path, tmp_path: Path) -> None:
    again = generate_detection_dataset(tmp_path / "a", 7, SIZES["train"], SIZES["val"], SIZES["calib"], W, H)
    first, second = _labels(det_root), _labels(again)
    assert len(first) == sum(SIZES.values()) + 1
    assert first == second
    other = generate_detection_dataset(tmp_path / "b", 8, SIZES["train"], SIZES["val"], SIZES["calib"], W, H)
    assert _labels(other) != first, "a different seed must give different labels"


def test_images_deterministic_and_sized() -> None:
    a, la, qa = render_detection_image(3, 1, 4, SceneConfig(width=W, height=H))
    b, lb, qb = render_detection_image(3, 1, 4, SceneConfig(width=W, height=H))
    assert a.shape == (H, W, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and qa == qb and la.yolo_lines() == lb.yolo_lines()
    c, _, _ = render_detection_image(3, 1, 5, SceneConfig(width=W, height=H))
    assert not np.array_equal(a, c)


def test_yolo_labels_valid_and_match_coco(det_root: Path) -> None:
    for split, n in SIZES.items():
        assert len(list((det_root / "images" / split).glob("*.jpg"))) == n
    for img_path in (det_root / "images" / "train").glob("*.jpg"):
        assert cv2.imread(str(img_path)).shape == (H, W, 3)
    coco = json.loads((det_root / "annotations" / "instances_val.json").read_text())
    assert [c["id"] for c in coco["categories"]] == list(range(10))
    assert [c["name"] for c in coco["categories"]] == list(CLASS_NAMES)
    ann_ids = [a["id"] for a in coco["annotations"]]
    assert ann_ids == list(range(1, len(ann_ids) + 1)), "COCO annotation ids must start at 1"
    n_boxes = 0
    for img in coco["images"]:
        assert (img["width"], img["height"]) == (W, H)
        assert (det_root / img["file_name"]).is_file()
        txt = det_root / "labels" / "val" / (Path(img["file_name"]).stem + ".txt")
        rows = np.loadtxt(txt, ndmin=2) if txt.read_text() else np.zeros((0, 5))
        anns = [a for a in coco["annotations"] if a["image_id"] == img["id"]]
        assert len(rows) == len(anns)
        for row, ann in zip(rows, anns, strict=True):
            cls, cx, cy, w, h = row
            assert int(cls) == ann["category_id"] and 0 <= cls < 10
            assert 0.0 < w <= 1.0 and 0.0 < h <= 1.0
            assert cx - w / 2 >= -1e-6 and cx + w / 2 <= 1.0 + 1e-6
            assert cy - h / 2 >= -1e-6 and cy + h / 2 <= 1.0 + 1e-6
            x, y, bw, bh = ann["bbox"]
            np.testing.assert_allclose(
                [(cx - w / 2) * W, (cy - h / 2) * H, w * W, h * H], [x, y, bw, bh], atol=1e-3
            )
            assert 0 < ann["area"] <= bw * bh
            n_boxes += 1
    assert n_boxes >= SIZES["val"] * 2  # SceneConfig.min_objects is 2; placement seldom drops one


def test_coco_json_evaluates_as_perfect_against_itself(det_root: Path) -> None:
    """The json is usable as is by faster-coco-eval (category 0 included): GT as detections -> AP 1."""
    from faster_coco_eval import COCO, COCOeval_faster

    gt = COCO(str(det_root / "annotations" / "instances_val.json"))
    dets = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
        for a in gt.dataset["annotations"]
    ]
    ev = COCOeval_faster(gt, gt.loadRes(dets), "bbox", print_function=lambda *a, **k: None)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0) and ev.stats[1] == pytest.approx(1.0)


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_labels_cover_the_drawn_shapes(index: int) -> None:
    """Re-render the same image without its objects (same background and effect streams): the
    pixels that differ are the shapes. No clutter, so every changed pixel must lie in (or within
    blur reach of) a labelled box, each box must be mostly shape, and touch shape on all 4 edges.
    """
    from yolov8_trt_ros.datasets.synthetic import apply_effects, make_background

    cfg = SceneConfig(width=W, height=H, max_clutter=0)
    image, labels, _ = render_detection_image(11, 0, index, cfg)
    background = make_background(np.random.default_rng([11, 0, index, 0]), W, H, cfg.photo_prob)
    reference, _ = apply_effects(background, np.random.default_rng([11, 0, index, 2]))
    changed = np.abs(image.astype(np.int16) - reference.astype(np.int16)).max(axis=2) > 2
    assert len(labels.class_ids) >= 1 and changed.any()
    covered = np.zeros_like(changed)
    for x0, y0, x1, y1 in labels.boxes.tolist():
        assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
        covered[max(y0 - 6, 0) : y1 + 6, max(x0 - 6, 0) : x1 + 6] = True
        inner = changed[y0:y1, x0:x1]
        assert inner.mean() > 0.3, "a labelled box is mostly background"
        assert inner[0].any() and inner[-1].any() and inner[:, 0].any() and inner[:, -1].any(), (
            "box not tight"
        )
    assert np.count_nonzero(changed & ~covered) <= 0.002 * np.count_nonzero(changed), "unlabelled shape"


def test_bad_arguments_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 64"):
        generate_detection_dataset(tmp_path, 0, 1, 0, 0, width=32, height=32)
    with pytest.raises(ValueError, match="n_val"):
        generate_detection_dataset(tmp_path, 0, 1, -1, 0)
    with pytest.raises(ValueError, match="n_frames"):
        tracking_ground_truth(0, n_frames=0)


def test_bundled_photos_present() -> None:
    """Backgrounds use only photos inside the scikit-image wheel; all of them must be found."""
    assert available_photos() == list(PHOTO_FILES)


# ---------------------------------------------------------------------------------------------
# Tracking
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gts() -> list:
    return [tracking_ground_truth(seed, seq, 300) for seed in (0, 1) for seq in (0, 1)]


def _runs(frames: np.ndarray) -> list[np.ndarray]:
    """Index arrays of runs of consecutive frames."""
    cuts = np.flatnonzero(np.diff(frames) != 1) + 1
    return np.split(np.arange(len(frames)), cuts)


def test_tracking_files_match_arrays_and_are_deterministic(tmp_path: Path) -> None:
    a = generate_tracking_sequences(tmp_path / "a", 5, 2, 12, W, H, n_objects=5, workers=1)
    b = generate_tracking_sequences(tmp_path / "b", 5, 2, 12, W, H, n_objects=5, workers=2)
    for s, (da, db) in enumerate(zip(a, b, strict=True)):
        assert da.name == db.name == f"SYNTH-{s + 1:02d}"
        gt_bytes = (da / "gt" / "gt.txt").read_bytes()
        assert gt_bytes == (db / "gt" / "gt.txt").read_bytes()
        assert gt_bytes.decode() == tracking_ground_truth(5, s, 12, W, H, 5).mot_lines()
        ini = configparser.ConfigParser()
        ini.read(da / "seqinfo.ini")
        seq = ini["Sequence"]
        assert (seq["name"], seq["frameRate"], seq["seqLength"]) == (da.name, "30", "12")
        assert (int(seq["imWidth"]), int(seq["imHeight"])) == (W, H)
        imgs = sorted((da / "img1").glob("*.jpg"))
        assert [p.name for p in imgs] == [f"{i:06d}.jpg" for i in range(1, 13)]
        assert cv2.imread(str(imgs[0])).shape == (H, W, 3)
        assert imgs[3].read_bytes() == (db / "img1" / imgs[3].name).read_bytes()
        rows = np.loadtxt(da / "gt" / "gt.txt", delimiter=",", ndmin=2)
        assert rows.shape[1] == 9 and set(rows[:, 6]) == {1.0}
        assert rows[:, 7].min() >= 1 and rows[:, 7].max() <= 10  # 1-based classes
        assert np.all((rows[:, 8] >= 0) & (rows[:, 8] <= 1))


def test_short_sequence_is_a_prefix_of_a_long_one(gts: list) -> None:
    long, short = gts[0], tracking_ground_truth(0, 0, 60)
    keep = long.frames <= 60
    assert np.array_equal(short.frames, long.frames[keep]) and np.array_equal(short.ids, long.ids[keep])
    np.testing.assert_array_equal(short.boxes, long.boxes[keep])
    np.testing.assert_array_equal(short.visibility, long.visibility[keep])
    assert not np.array_equal(tracking_ground_truth(0, 1, 60).boxes[:5], short.boxes[:5])


def test_motion_is_near_constant_velocity(gts: list) -> None:
    residuals, speeds = [], []
    for gt in gts:
        for i in np.unique(gt.ids):
            sel = np.flatnonzero(gt.ids == i)
            centre = gt.boxes[sel, :2] + gt.boxes[sel, 2:] / 2
            for run in _runs(gt.frames[sel]):
                for s in range(0, len(run) - 30, 15):
                    w = run[s : s + 30]
                    t = gt.frames[sel][w].astype(float)
                    for axis in (0, 1):
                        coef = np.polyfit(t, centre[w, axis], 1)
                        residuals.append(np.sqrt(np.mean((np.polyval(coef, t) - centre[w, axis]) ** 2)))
                        if axis == 0:
                            speeds.append(abs(coef[0]))
    residuals = np.asarray(residuals)
    assert len(residuals) > 100
    assert np.median(residuals) < 1.0 and np.quantile(residuals, 0.95) < 2.5
    assert np.min(speeds) > 1.0  # horizontal motion never stalls


def test_objects_leave_and_reenter(gts: list) -> None:
    reentries = 0
    for gt in gts:
        for i in np.unique(gt.ids):
            sel = np.flatnonzero(gt.ids == i)
            runs = _runs(gt.frames[sel])
            for run in runs[1:]:
                x, y, w, h = gt.boxes[sel][run[0]]
                at_border = x < 0 or y < 0 or x + w > gt.width or y + h > gt.height
                assert at_border, "a track may only reappear through the frame border"
                reentries += 1
    assert reentries >= 4


def test_occlusions_present_and_pillar_occlusions_brief(gts: list) -> None:
    behind_pillar, hidden, partial = [], 0, 0
    for gt in gts:
        assert len(gt.occluders) >= 1
        for i in np.unique(gt.ids):
            sel = np.flatnonzero(gt.ids == i)
            vis, boxes = gt.visibility[sel], gt.boxes[sel]
            hidden += int(np.sum(vis == 0.0))
            partial += int(np.sum((vis > 0) & (vis < 0.5)))
            inside = np.zeros(len(sel), bool)
            for x0, _, x1, _ in gt.occluders:  # full-height pillars
                inside |= (boxes[:, 0] >= x0) & (boxes[:, 0] + boxes[:, 2] <= x1)
            assert np.all(vis[inside] == 0.0), "a box wholly behind a pillar must have visibility 0"
            behind_pillar += [len(r) for r in _runs(gt.frames[sel][inside]) if len(r)]
    assert partial > 50 and hidden > 10
    assert behind_pillar, "no object ever passes wholly behind a pillar"
    assert max(behind_pillar) <= 30, "a pillar should hide an object for about a second at most"


def test_visibility_matches_a_pixel_raster(gts: list) -> None:
    """Recompute visibility on a pixel grid (independent of the exact union-area code)."""
    gt = gts[0]
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0 : gt.height, 0 : gt.width] + 0.5  # pixel centres
    for k in rng.choice(len(gt.frames), 80, replace=False).tolist():
        f, i = gt.frames[k], gt.ids[k]
        x, y, w, h = gt.boxes[k]
        box = (xs > x) & (xs < x + w) & (ys > y) & (ys < y + h)
        cover = np.zeros_like(box)
        for x0, y0, x1, y1 in gt.occluders:
            cover |= (xs > x0) & (xs < x1) & (ys > y0) & (ys < y1)
        for j in gt.at_frame(f):
            if gt.depth[gt.ids[j] - 1] > gt.depth[i - 1]:
                bx, by, bw, bh = gt.boxes[j]
                cover |= (xs > bx) & (xs < bx + bw) & (ys > by) & (ys < by + bh)
        expected = np.count_nonzero(box & ~cover) / (w * h)
        # Sampling at pixel centres errs by at most about half a pixel along each edge.
        assert gt.visibility[k] == pytest.approx(expected, abs=(w + h) / (w * h))


def test_crossing_pairs_meet(gts: list) -> None:
    """Objects 1/2 (and 3/4) start on opposite sides of a row and pass each other."""
    for gt in gts:
        for a, b in ((1, 2), (3, 4)):
            fa, fb = gt.frames[gt.ids == a], gt.frames[gt.ids == b]
            common = np.intersect1d(fa, fb)
            xa = {f: gt.boxes[gt.ids == a][fa == f][0, 0] for f in common.tolist()}
            xb = {f: gt.boxes[gt.ids == b][fb == f][0, 0] for f in common.tolist()}
            sign = np.sign([xa[f] - xb[f] for f in common.tolist()])
            assert np.any(sign < 0) and np.any(sign > 0), f"tracks {a} and {b} never cross"


# ---------------------------------------------------------------------------------------------
# The trained test model
# ---------------------------------------------------------------------------------------------
MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "test"


def _sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.skipif(not (MODEL_DIR / "MANIFEST.json").is_file(), reason="models/test not present")
def test_manifest_matches_artifacts() -> None:
    man = json.loads((MODEL_DIR / "MANIFEST.json").read_text())
    assert man["sha256"]["pt"] == _sha256(MODEL_DIR / "yolov8n_synth.pt")
    assert man["sha256"]["onnx"] == _sha256(MODEL_DIR / "yolov8n_synth.onnx")
    assert man["reid_finetune"]["sha256"] == _sha256(MODEL_DIR / "yolov8n_synth_reid.pt")
    assert man["generator"]["version"] == GENERATOR_VERSION
    assert man["classes"] == list(CLASS_NAMES)
    assert man["val_ultralytics_pt"]["mAP50"] >= 0.85


@pytest.mark.skipif(not (MODEL_DIR / "yolov8n_synth.onnx").is_file(), reason="models/test not present")
def test_onnx_model_sees_the_objects() -> None:
    """Fresh val-distribution images through onnxruntime: shape [B, 14, 8400], confident scores,
    and the single best anchor sits inside a labelled object of the same class (no NMS needed)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(MODEL_DIR / "yolov8n_synth.onnx"), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[1:] == [3, 640, 640]
    imgs, labels = [], []
    for idx in range(3):
        image, lab, _ = render_detection_image(1234, 1, idx)  # an unseen seed, same distribution
        pad = (640 - image.shape[0]) // 2
        lb = cv2.copyMakeBorder(
            image, pad, 640 - image.shape[0] - pad, 0, 0, cv2.BORDER_CONSTANT, value=(114,) * 3
        )
        imgs.append(lb[..., ::-1].transpose(2, 0, 1).astype(np.float32) / 255.0)
        labels.append((lab, pad))
    out = sess.run(None, {"images": np.ascontiguousarray(np.stack(imgs))})[0]
    assert out.shape == (3, 14, 8400)
    for b, (lab, pad) in enumerate(labels):
        scores = out[b, 4:]
        cls, anchor = np.unravel_index(np.argmax(scores), scores.shape)
        assert scores[cls, anchor] > 0.5
        cx, cy = out[b, 0, anchor], out[b, 1, anchor] - pad
        inside = [
            c == cls and x0 <= cx <= x1 and y0 <= cy <= y1
            for c, (x0, y0, x1, y1) in zip(lab.class_ids.tolist(), lab.boxes.tolist(), strict=True)
        ]
        assert any(inside), "the most confident anchor is not on an object of its class"
