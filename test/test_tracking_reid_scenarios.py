"""Re-identification in constructed scenes: what appearance fixes that IoU alone cannot, and the
merges it must not make. Each scene is also run with re-identification off, to show that the
scene really needs it (ByteTrack fails there) where that is the point."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

from yolov8_trt_ros.core.config import TrackerConfig
from yolov8_trt_ros.core.tracking import ByteTracker
from yolov8_trt_ros.core.types import Detections

DIM = 64
REID = TrackerConfig(reid_enabled=True)
#: One visible object: (x1, y1, x2, y2), embedding, class, score.
Obj = tuple[Sequence[float], np.ndarray, int, float]


def identities(n: int, seed: int = 0) -> np.ndarray:
    """``n`` random unit vectors (pairwise cosine distance about 1 +- 0.13 in 64 dimensions)."""
    e = np.random.default_rng(seed).normal(size=(n, DIM))
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def look(identity: np.ndarray, rng: np.random.Generator, noise: float = 0.02) -> np.ndarray:
    """One detection's embedding of ``identity``: itself plus noise, unit length."""
    e = identity + rng.normal(0.0, noise, identity.shape)
    return e / np.linalg.norm(e)


def frame(objects: Sequence[Obj]) -> Detections:
    if not objects:
        return Detections.empty()
    return Detections(
        np.array([o[0] for o in objects], dtype=np.float32),
        np.array([o[3] for o in objects], dtype=np.float32),
        np.array([o[2] for o in objects], dtype=np.int32),
        np.array([o[1] for o in objects], dtype=np.float32),
    )


def run(cfg: TrackerConfig, frames: Sequence[Sequence[Obj]]) -> Iterator[tuple[ByteTracker, list[int]]]:
    """Feed ``frames``; yields the tracker and each detection's track id (-1: none), per frame."""
    tracker = ByteTracker(cfg)
    for objects in frames:
        tracker.update(frame(objects))
        yield tracker, tracker.detection_track_ids.tolist()


def box(x: float, y: float, w: float = 40.0, h: float = 60.0) -> tuple[float, float, float, float]:
    return (x, y, x + w, y + h)


def leave_and_return(gap: int, cls_after: int = 0, emb_after: int = 0, seed: int = 0) -> list[list[Obj]]:
    """Object 0 walks right and out of a 640-wide frame, is gone ``gap`` frames, re-enters at the
    left lower down (class ``cls_after``, looking like identity ``emb_after``); object 1 stays."""
    rng = np.random.default_rng(seed)
    ident = identities(3, seed)
    frames: list[list[Obj]] = []
    for f in range(30):  # 0 walks 8 px/frame from x=420: out after x2 > 640
        still: Obj = (box(100, 40), look(ident[1], rng), 0, 0.9)
        x = 420 + 8 * f
        frames.append([(box(x, 200), look(ident[0], rng), 0, 0.9), still] if x + 40 <= 640 else [still])
    frames += [[(box(100, 40), look(ident[1], rng), 0, 0.9)] for _ in range(gap)]
    for f in range(10):
        frames.append(
            [
                (box(10 + 8 * f, 380), look(ident[emb_after], rng), cls_after, 0.9),
                (box(100, 40), look(ident[1], rng), 0, 0.9),
            ]
        )
    return frames


def ids_of_first(cfg: TrackerConfig, frames: list[list[Obj]]) -> list[int]:
    """The track id of each frame's first detection (-1 where it has none, or no detections)."""
    return [ids[0] if ids else -1 for _, ids in run(cfg, frames)]


def test_object_that_left_the_frame_gets_its_id_back():
    frames = leave_and_return(gap=60)
    ids = ids_of_first(REID, frames)
    before, after = ids[5], ids[-10:]
    assert before > 0 and after == [before] * 10
    # The re-found track starts at the new box (its Kalman state re-initiated there).
    *_, (tracker, _) = run(REID, frames[:-10])
    refound = next(t for t in tracker.update(frame(frames[-10])) if t.track_id == before)
    assert refound.box_xyxy == frames[-10][0][0]
    # ByteTrack (re-identification off) cannot: the track has ended, a new id starts (published
    # from its second frame on).
    plain = ids_of_first(dataclasses.replace(REID, reid_enabled=False), frames)
    assert plain[5] == before and plain[-10] == -1 and plain[-9] not in (before, -1)


def test_a_detection_too_weak_to_start_a_track_revives_nobody():
    """The gallery asks of a detection what a new track asks (``new_track_thresh``): a box between
    ``track_thresh`` and that bar, often a false positive, revives no lost track."""
    frames = leave_and_return(gap=60)
    back, weak = len(frames) - 10, (REID.track_thresh + REID.new_track_thresh) / 2
    for f in (back, back + 1):
        box_, emb, cls, _ = frames[f][0]
        frames[f][0] = (box_, emb, cls, weak)
    ids = ids_of_first(REID, frames)
    assert ids[back] == -1 and ids[back + 1] == -1
    assert ids[back + 2] == ids[5] > 0  # at full score it is re-found, with its old id


def test_gallery_ends_after_reid_buffer():
    """Gone longer than ``max_reid_lost`` frames: the track has ended, a new id starts."""
    cfg = dataclasses.replace(REID, reid_buffer=50)
    ids = ids_of_first(cfg, leave_and_return(gap=60))
    assert ids[-1] not in (ids[5], -1)
    assert ids_of_first(dataclasses.replace(cfg, reid_buffer=120), leave_and_return(gap=60))[-1] == ids[5]


def test_no_refind_across_classes_when_class_aware():
    frames = leave_and_return(gap=60, cls_after=1)
    aware = ids_of_first(dataclasses.replace(REID, class_aware=True), frames)
    assert aware[-1] not in (aware[5], -1)
    agnostic = ids_of_first(REID, frames)  # the same scene without the class gate re-finds it
    assert agnostic[-1] == agnostic[5]


def test_new_object_with_another_look_where_a_lost_one_was_gets_a_new_id():
    """A is hidden in place past ByteTrack's buffer; C, looking different, appears at A's box."""
    rng = np.random.default_rng(3)
    ident = identities(3, 3)

    def scene(newcomer: int) -> list[list[Obj]]:
        a = [[(box(200, 200), look(ident[0], rng), 0, 0.9)] for _ in range(10)]
        return a + [[] for _ in range(40)] + [[(box(200, 200), look(ident[newcomer], rng), 0, 0.9)]] * 3

    ids = ids_of_first(REID, scene(newcomer=2))
    assert ids[-1] not in (ids[5], -1)
    assert ids_of_first(REID, scene(newcomer=0))[-1] == ids[5]  # A itself is re-found


def test_detection_that_looks_more_like_a_followed_object_revives_nobody():
    """A (lost) and B (tracked) look alike; a detection closer in look to B than to A, though
    within ``gallery_thresh`` of A, is a new object (or B's duplicate), not A."""
    rng = np.random.default_rng(4)
    a, other = identities(2, 4)
    b = a + 0.35 * other  # cosine distance to A about 0.06
    b /= np.linalg.norm(b)
    assert 1.0 - a @ b <= REID.gallery_thresh / 2  # B's look alone would re-find A

    def scene(newcomer: np.ndarray) -> list[list[Obj]]:
        seen: list[list[Obj]] = [[(box(300, 50), b, 0, 0.9), (box(100, 300), a, 0, 0.9)] for _ in range(10)]
        gone: list[list[Obj]] = [[(box(300, 50), b, 0, 0.9)] for _ in range(40)]
        back: list[list[Obj]] = [
            [(box(300, 50), b, 0, 0.9), (box(500, 380), look(newcomer, rng, 0.005), 0, 0.9)]
        ] * 3
        return seen + gone + back

    a_id = next(run(REID, scene(a)))[1][1]
    assert [ids for _, ids in run(REID, scene(a))][-1][1] == a_id  # control: A comes back
    assert [ids for _, ids in run(REID, scene(b))][-1][1] not in (a_id, -1)


def crossing_swap() -> list[list[Obj]]:
    """A and B (same class) stand side by side, then swap sides in one frame and move apart:
    each track's box then overlaps the *other* object's detection more than its own."""
    rng = np.random.default_rng(5)
    a, b = identities(2, 5)
    frames: list[list[Obj]] = [
        [(box(100, 200), look(a, rng), 0, 0.9), (box(110, 200), look(b, rng), 0, 0.9)] for _ in range(10)
    ]
    for f in range(8):
        frames.append(
            [(box(108 + 8 * f, 200), look(a, rng), 0, 0.9), (box(102 - 8 * f, 200), look(b, rng), 0, 0.9)]
        )
    return frames


def test_crossing_objects_keep_their_ids_by_appearance():
    frames = crossing_swap()
    reid = [ids for _, ids in run(REID, frames)]
    assert all(ids == reid[0] for ids in reid) and -1 not in reid[0]
    plain = [ids for _, ids in run(dataclasses.replace(REID, reid_enabled=False), frames)]
    assert plain[0] == reid[0] and plain[-1] == reid[0][::-1]  # IoU alone swaps them


def test_embedding_is_the_ema_of_high_score_detections():
    alpha = 0.8
    cfg = dataclasses.replace(REID, ema_alpha=alpha)
    e1, e2, e3 = identities(3, 6)
    b = box(50, 50)
    frames = [[(b, e1, 0, 0.9)], [(b, e2, 0, 0.9)], [(b, e3, 0, 0.3)]]  # the last one is low-score
    runs = run(cfg, frames)
    tracker, (track_id,) = next(runs)
    assert np.allclose(tracker.embedding(track_id), e1, atol=1e-6)
    next(runs)
    expected = alpha * e1 + (1 - alpha) * e2
    assert np.allclose(tracker.embedding(track_id), expected / np.linalg.norm(expected), atol=1e-6)
    _, ids = next(runs)
    assert ids == [track_id]  # matched in the second association, appearance unchanged
    assert np.allclose(tracker.embedding(track_id), expected / np.linalg.norm(expected), atol=1e-6)


def test_reid_switched_at_run_time():
    frames = leave_and_return(gap=60)
    plain = dataclasses.replace(REID, reid_enabled=False)
    # On from frame 3 (tracks take their looks from their next detections): the id comes back.
    tracker = ByteTracker(plain)
    first: list[int] = []
    for i, objects in enumerate(frames):
        if i == 3:
            tracker.update_config(REID)
        tracker.update(frame(objects))
        first.append(int(tracker.detection_track_ids[0]) if len(objects) else -1)
    assert first[-1] == first[5] > 0
    # Off again while the object is in the gallery: it ends there and then, and returns as new.
    tracker = ByteTracker(REID)
    for i, objects in enumerate(frames):
        if i == 75:
            tracker.update_config(plain)
        tracker.update(frame(objects))
        if i == 5:
            lost_id = int(tracker.detection_track_ids[0])
        if i == 75:
            assert lost_id in tracker.removed_ids
    assert tracker.detection_track_ids[0] not in (lost_id, -1)
