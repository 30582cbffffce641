"""Re-identification switched through ``Pipeline.update_tracker`` at run time, on the test model.

The pipeline keeps one ``ByteTracker`` per stream and forwards configuration changes to it: the
switch must reach every stream's tracker and keep its tracks and ids (no reset), in both
directions. The ONNX Runtime backend runs the test model on the CPU.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from yolov8_trt_ros.core.config import EngineConfig
from yolov8_trt_ros.core.pipeline import Pipeline, PipelineConfig
from yolov8_trt_ros.core.sources import iter_frames

MODEL = Path(__file__).resolve().parents[1] / "models" / "test" / "yolov8n_synth.onnx"


def test_reid_switch_at_run_time_keeps_every_streams_tracks():
    frames = list(iter_frames("synthetic:0", synthetic_frames=12))
    cfg = PipelineConfig.default()
    cfg.engine = EngineConfig(backend="onnxruntime", model_path=str(MODEL), num_threads=1)
    pipeline = Pipeline.create(cfg, embeddings=True)
    off = pipeline.tracker_cfg
    on = dataclasses.replace(off, reid_enabled=True)
    ids: list[set[int]] = []
    try:
        for i, image in enumerate(frames):
            if i in (4, 8):
                pipeline.update_tracker(on if i == 4 else off)
                assert set(pipeline.trackers) == {"a", "b"}
                assert all(t.config.reid_enabled == (i == 4) for t in pipeline.trackers.values())
            results = pipeline.process([image, image], ["bgr8", "bgr8"], streams=["a", "b"])
            tracks_a, tracks_b = (r.tracks or [] for r in results)
            assert tracks_a == tracks_b  # the same frames in both streams: the same tracks
            ids.append({t.track_id for t in tracks_a})
            for r in results:  # each matched detection reports a published track
                matched = np.asarray(r.track_ids)[np.asarray(r.track_ids) >= 0]
                assert set(matched.tolist()) <= {t.track_id for t in r.tracks or []}
    finally:
        pipeline.close()
    # Ids survive both switches: the tracks seen before them are still followed after them.
    assert ids[3] and ids[3] & ids[4] and ids[7] & ids[8]


def test_embeddings_are_computed_only_for_reidentification():
    """The backend returns embeddings when the tracker's ReID is on at creation, not otherwise:
    they cost device time (and with TensorRT another NMS layer) that nobody else reads."""
    image = next(iter(iter_frames("synthetic:0", synthetic_frames=1)))
    for reid in (False, True):
        cfg = PipelineConfig.default()
        cfg.engine = EngineConfig(backend="onnxruntime", model_path=str(MODEL), num_threads=1)
        cfg.tracker = dataclasses.replace(cfg.tracker, reid_enabled=reid)
        pipeline = Pipeline.create(cfg)
        try:
            (result,) = pipeline.process([image], ["bgr8"])
            assert len(result.detections) > 0
            assert (result.detections.embeddings is not None) == reid
            assert bool(pipeline.backend.embedding_dim) == reid
        finally:
            pipeline.close()
