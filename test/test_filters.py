"""Detection filters: classes, per-class thresholds, ROI (centre and overlap), run-time updates."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolov8_trt_ros.core.config import ConfigError, FilterConfig
from yolov8_trt_ros.core.filters import DetectionFilter, box_polygon_overlap, points_in_polygon
from yolov8_trt_ros.core.types import Detections

TEST_MODEL = Path(__file__).resolve().parents[1] / "models" / "test" / "yolov8n_synth.onnx"
CONCAVE = [0, 0, 100, 0, 100, 100, 50, 30, 0, 100]  # a square with a V-shaped notch from below
CONVEX = [10, 10, 90, 20, 80, 90, 20, 70]


def random_detections(rng: np.random.Generator, n: int, classes: int = 6, extent: float = 120) -> Detections:
    xy = rng.uniform(-10, extent, (n, 2))
    wh = rng.uniform(2, 40, (n, 2))
    return Detections(np.hstack([xy, xy + wh]), rng.uniform(0, 1, n), rng.integers(0, classes, n))


def reference_keep(dets: Detections, cfg: FilterConfig, conf: float) -> np.ndarray:
    """Per-detection loop, with OpenCV for the ROI geometry."""
    keep = []
    poly = np.asarray(cfg.roi, np.float32).reshape(-1, 2) if cfg.roi else None
    if poly is not None and len(poly) == 2:  # rectangle x1, y1, x2, y2
        (x1, y1), (x2, y2) = poly
        poly = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float32)
    for box, score, cls in zip(dets.boxes, dets.scores, dets.class_ids, strict=True):
        ok = (not cfg.classes or int(cls) in cfg.classes) and score >= cfg.class_thresholds.get(
            int(cls), conf
        )
        if ok and poly is not None:
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            if cfg.roi_mode == "center":
                ok = cv2.pointPolygonTest(poly, (float(cx), float(cy)), False) > 0
            else:
                corners = np.array([[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]])
                inter, _ = cv2.intersectConvexConvex(corners.astype(np.float32), poly)
                ok = inter / ((box[2] - box[0]) * (box[3] - box[1])) >= cfg.roi_min_overlap
        keep.append(bool(ok))
    return np.array(keep, bool)


def _far_from_edges(dets: Detections, polygon: list[float], margin: float = 1e-3) -> Detections:
    """Drop detections whose centre lies on (or within ``margin`` of) the ROI boundary."""
    poly = np.asarray(polygon, np.float32).reshape(-1, 2)
    if len(poly) == 2:
        (x1, y1), (x2, y2) = poly
        poly = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float32)
    centres = (dets.boxes[:, :2] + dets.boxes[:, 2:]) / 2
    dist = np.array([abs(cv2.pointPolygonTest(poly, (float(x), float(y)), True)) for x, y in centres])
    return dets.select(dist > margin)


@pytest.mark.parametrize("seed", range(4))
def test_random_detections_match_reference(seed):
    rng = np.random.default_rng(seed)
    dets = random_detections(rng, 300)
    conf = float(rng.uniform(0.1, 0.4))
    for cfg in (
        FilterConfig(),
        FilterConfig(classes=[1, 3, 4]),
        FilterConfig(class_thresholds={2: 0.8, 5: 0.05}),
        FilterConfig(classes=[0, 2], class_thresholds={2: 0.6}, roi=CONVEX),
        FilterConfig(roi=CONVEX, roi_mode="overlap", roi_min_overlap=float(rng.uniform(0.2, 0.9))),
        FilterConfig(roi=[20, 30, 70, 100], roi_mode="overlap", roi_min_overlap=0.5),
    ):
        d = _far_from_edges(dets, cfg.roi) if cfg.roi else dets
        out = DetectionFilter(cfg, conf)(d)
        expected = d.select(reference_keep(d, cfg, conf))
        np.testing.assert_array_equal(out.boxes, expected.boxes)
        np.testing.assert_array_equal(out.class_ids, expected.class_ids)


def test_rectangle_centre_test_is_inclusive():
    boxes = np.array([[0, 0, 20, 20], [30, 30, 50, 50], [31, 31, 51, 51], [-10, -10, 10, 10]], np.float32)
    dets = Detections(boxes, np.full(4, 0.9), np.zeros(4))
    out = DetectionFilter(FilterConfig(roi=[10, 10, 40, 40]), 0.25)(dets)
    # centres (10, 10) and (40, 40) lie on the rectangle's border: kept; (41, 41) and (0, 0): dropped
    np.testing.assert_array_equal(out.boxes, boxes[:2])


def test_polygon_centre_test_agrees_with_opencv_on_a_concave_roi():
    rng = np.random.default_rng(5)
    pts = rng.uniform(-10, 110, (5000, 2))
    poly = np.asarray(CONCAVE, np.float64).reshape(-1, 2)
    dist = np.array([cv2.pointPolygonTest(poly.astype(np.float32), tuple(map(float, p)), True) for p in pts])
    pts, dist = pts[np.abs(dist) > 1e-6], dist[np.abs(dist) > 1e-6]
    np.testing.assert_array_equal(points_in_polygon(pts, poly), dist > 0)
    assert 0.2 < (dist > 0).mean() < 0.8  # both outcomes are well represented


def test_overlap_fraction_on_a_concave_roi_matches_a_fine_raster():
    rng = np.random.default_rng(6)
    boxes = rng.uniform(-10, 100, (300, 4))
    boxes[:, 2:] = boxes[:, :2] + rng.uniform(10, 40, (300, 2))
    boxes = np.round(boxes * 16) / 16  # on the raster's grid
    poly = np.asarray(CONCAVE, np.float64).reshape(-1, 2)
    s, off = 16, 20  # 16 samples per pixel, shifted so that negative coordinates fit
    mask = np.zeros((160 * s, 160 * s), np.uint8)
    cv2.fillPoly(mask, [np.round((poly + off) * s * 16).astype(np.int32)], 1, shift=4)
    g = np.round((boxes + off) * s).astype(int)
    ref = np.array([mask[y1:y2, x1:x2].mean() for x1, y1, x2, y2 in g])
    frac = box_polygon_overlap(boxes, poly)
    np.testing.assert_allclose(frac, ref, atol=0.01)  # raster edge error, ~1/16 px per edge
    assert (frac == 0).any() and (frac == 1).any() and ((frac > 0.1) & (frac < 0.9)).any()


def test_overlap_is_independent_of_polygon_orientation():
    rng = np.random.default_rng(7)
    dets = random_detections(rng, 100)
    poly = np.asarray(CONCAVE, np.float64).reshape(-1, 2)
    np.testing.assert_allclose(
        box_polygon_overlap(dets.boxes, poly), box_polygon_overlap(dets.boxes, poly[::-1]), atol=1e-9
    )


def test_zero_area_box_uses_its_centre():
    boxes = np.array([[50, 50, 50, 60], [150, 50, 150, 60]], np.float32)
    frac = box_polygon_overlap(boxes, np.asarray(CONVEX, np.float64).reshape(-1, 2))
    np.testing.assert_array_equal(frac, [1.0, 0.0])


def test_update_swaps_rules_and_rejects_bad_config():
    rng = np.random.default_rng(8)
    dets = random_detections(rng, 200)
    f = DetectionFilter(FilterConfig(classes=[1]), 0.2)
    assert set(f(dets).class_ids.tolist()) == {1}
    f.update(FilterConfig(classes=[2, 3]), 0.5)
    out = f(dets)
    assert set(out.class_ids.tolist()) == {2, 3} and out.scores.min() >= 0.5
    assert f.cfg.classes == [2, 3] and f.conf_threshold == 0.5
    with pytest.raises(ConfigError):
        f.update(FilterConfig(roi=[10, 10, 5, 40]), 0.5)  # x2 < x1
    with pytest.raises(ConfigError):
        f.update(FilterConfig(), 1.5)
    assert f.cfg.classes == [2, 3] and f.conf_threshold == 0.5  # old rules still in force
    with pytest.raises(ConfigError):
        DetectionFilter(FilterConfig(roi_mode="inside"), 0.25)


def test_concurrent_updates_never_mix_two_configs():
    rng = np.random.default_rng(9)
    dets = random_detections(rng, 300)
    cfg_a = FilterConfig(classes=[0, 1, 2], roi=CONVEX)
    cfg_b = FilterConfig(class_thresholds={3: 0.9}, roi=[0, 0, 60, 60], roi_mode="overlap")
    allowed = {
        DetectionFilter(cfg_a, 0.3)(dets).boxes.tobytes(),
        DetectionFilter(cfg_b, 0.6)(dets).boxes.tobytes(),
    }
    f = DetectionFilter(cfg_a, 0.3)
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            f.update(cfg_b, 0.6)
            f.update(cfg_a, 0.3)

    t = threading.Thread(target=flip)
    t.start()
    try:
        seen = {f(dets).boxes.tobytes() for _ in range(300)}
    finally:
        stop.set()
        t.join()
    assert seen <= allowed


def test_empty_detections_pass_through():
    out = DetectionFilter(FilterConfig(classes=[1], roi=CONVEX), 0.25)(Detections.empty())
    assert len(out) == 0


@pytest.mark.skipif(not TEST_MODEL.is_file(), reason=f"trained test model {TEST_MODEL} is absent")
def test_filters_on_real_detections_of_the_test_model():
    """The synthetic 10-class model on generated val images: filter its real detections."""
    import onnxruntime as ort

    from yolov8_trt_ros.core.config import PostprocessConfig, PreprocessConfig
    from yolov8_trt_ros.core.postprocess import postprocess
    from yolov8_trt_ros.core.preprocess import CpuPreprocessor
    from yolov8_trt_ros.core.types import EngineOutput
    from yolov8_trt_ros.datasets.synthetic import SPLIT_IDS, render_detection_image

    session = ort.InferenceSession(str(TEST_MODEL), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    h, w = (int(d) if isinstance(d, int) else 640 for d in inp.shape[2:])
    pre = CpuPreprocessor(PreprocessConfig(input_width=w, input_height=h))
    post_cfg = None
    all_dets = []
    for index in range(4):
        image, _, _ = render_detection_image(seed=0, split_id=SPLIT_IDS["val"], index=index)
        tensor, lbs = pre([image], ["bgr8"])
        (raw,) = session.run(None, {inp.name: tensor})[:1]
        post_cfg = post_cfg or PostprocessConfig(conf_threshold=0.25, num_classes=raw.shape[1] - 4)
        all_dets += postprocess(EngineOutput(raw=raw), lbs, post_cfg)
    dets = Detections(
        np.concatenate([d.boxes for d in all_dets]),
        np.concatenate([d.scores for d in all_dets]),
        np.concatenate([d.class_ids for d in all_dets]),
    )
    assert len(dets) >= 5, "the trained model should find objects on its own val images"
    present = sorted(set(dets.class_ids.tolist()))
    roi = [100, 80, 540, 80, 540, 400, 320, 250, 100, 400]  # concave
    for cfg in (
        FilterConfig(classes=present[: max(1, len(present) // 2)]),
        # the median score as the threshold of every other class present: some drop, some stay
        FilterConfig(class_thresholds={c: float(np.median(dets.scores)) for c in present[::2]}),
        FilterConfig(roi=[160, 120, 480, 360]),
        FilterConfig(roi=roi, roi_mode="overlap", roi_min_overlap=0.5),
    ):
        out = DetectionFilter(cfg, 0.25)(dets)
        keep = np.ones(len(dets), bool)
        if cfg.classes:
            keep &= np.isin(dets.class_ids, cfg.classes)
        for c, t in cfg.class_thresholds.items():
            keep &= ~((dets.class_ids == c) & (dets.scores < t))
        if cfg.roi and cfg.roi_mode == "center":
            x1, y1, x2, y2 = cfg.roi
            cx, cy = (dets.boxes[:, 0] + dets.boxes[:, 2]) / 2, (dets.boxes[:, 1] + dets.boxes[:, 3]) / 2
            keep &= (cx >= x1) & (cx <= x2) & (cy >= y1) & (cy <= y2)
        elif cfg.roi:
            mask = np.zeros(image.shape[:2], np.uint8)
            cv2.fillPoly(mask, [np.asarray(cfg.roi, np.int32).reshape(-1, 2)], 1)
            cells = [mask[int(b[1]) : int(b[3]), int(b[0]) : int(b[2])] for b in dets.boxes]
            frac = np.array([c.mean() if c.size >= 16 else np.nan for c in cells])  # nan: too small
            # pixel raster vs exact clipping: only boxes clearly on one side are compared
            clear = np.abs(frac - cfg.roi_min_overlap) > 0.1
            keep = keep[clear] & (frac[clear] >= cfg.roi_min_overlap)
            kept_set = {b.tobytes() for b in out.boxes}
            np.testing.assert_array_equal(
                [b.tobytes() in kept_set for b in dets.boxes[clear]], keep, err_msg=str(cfg)
            )
            continue
        np.testing.assert_array_equal(out.boxes, dets.boxes[keep], err_msg=str(cfg))
