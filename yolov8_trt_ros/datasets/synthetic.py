"""Seeded synthetic detection data: ten shape classes over gradients, noise and real photos.

Trained COCO weights and COCO images cannot be had where this project is built and tested, so
the test model and its labelled data are made here, reproducibly, from a seed.

Determinism contract
--------------------
Image ``index`` of split ``split_id`` owns the seed sequence ``[seed, split_id, index]`` and
draws from three independent streams ``[seed, split_id, index, k]``: ``k = 0`` background,
``k = 1`` objects, ``k = 2`` photometric effects. Labels therefore depend only on the object
stream and on OpenCV's integer polygon fill (``cv2.fillPoly``, ``LINE_8``, 4 fractional bits),
never on background pixels, so the same seed and :data:`GENERATOR_VERSION` give byte-identical
label files on any machine, in any worker order. Image bytes may differ between libjpeg builds.

Label conventions
-----------------
A label is the tight box of the object's *visible* pixels (COCO-style, not amodal). Placement
rejects any object or clutter bar that would leave an already placed object (or itself, when cut
by the frame border) with less than ``min_visible`` of its pixels in view, so every drawn shape
is labelled. Unlabelled clutter (long neutral bars) teaches the detector what not to fire on.

* YOLO txt: ``class cx cy w h`` normalised to [0, 1], six decimals, class ids 0..9.
* COCO json (val split): ``bbox`` = ``[x, y, w, h]`` in pixels, integers; **category ids are
  0..9, equal to the YOLO/model class index** (no +1 mapping); image and annotation ids start at
  1 (pycocotools treats annotation id 0 as "unmatched"); ``area`` is the visible pixel count;
  ``file_name`` is relative to the dataset root (``images/val/000000.jpg``).
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import math
import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

GENERATOR_VERSION = "1.0.0"

CLASS_NAMES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "ring",
    "hexagon",
    "diamond",
    "ellipse",
    "arrow",
)
NUM_CLASSES = len(CLASS_NAMES)

SPLIT_IDS: dict[str, int] = {"train": 0, "val": 1, "calib": 2}
TRACKING_SPLIT_ID = 3

# Photos bundled inside the scikit-image wheel (skimage/data/, no pooch download). A missing one
# falls back to a noise background: images change but labels do not (see module docstring).
PHOTO_FILES: tuple[str, ...] = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "grass.png",
    "gravel.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "motorcycle_left.png",
    "moon.png",
    "coins.png",
    "retina.jpg",
    "page.png",
)

_SHIFT = 4  # fractional bits of the fixed-point polygon vertices given to cv2.fillPoly
_ONE = 1 << _SHIFT

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class SceneConfig:
    """Knobs of one detection image; every field is recorded in ``generator.json``.

    Sizes are the longer side of a shape's unrotated box in pixels: ``min_size * (max_size /
    min_size) ** (u ** size_bias)`` with u uniform, i.e. log-uniform bent towards larger objects
    (``size_bias`` < 1) so that 8 px objects exist (about 8 % under 16 px) without dominating
    the val mAP; the median is about 70 px at 640x480.
    """

    width: int = 640
    height: int = 480
    min_objects: int = 2
    max_objects: int = 12
    min_size: float = 8.0
    max_size_frac: float = 0.5
    size_bias: float = 0.65
    min_visible: float = 0.5
    max_clutter: int = 3
    placement_tries: int = 12
    photo_prob: float = 0.4

    def validate(self) -> SceneConfig:
        """Raise ValueError for settings that cannot produce a valid image."""
        if self.width < 64 or self.height < 64:
            raise ValueError(f"image size must be at least 64x64, got {self.width}x{self.height}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(
                f"need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}"
            )
        if not 4.0 <= self.min_size < self.max_size:
            raise ValueError(f"need 4 <= min_size < max_size, got {self.min_size}, {self.max_size}")
        if not 0.0 < self.min_visible <= 1.0:
            raise ValueError(f"min_visible must be in (0, 1], got {self.min_visible}")
        return self

    @property
    def max_size(self) -> float:
        """Largest object side: a fraction of the shorter image side."""
        return self.max_size_frac * min(self.width, self.height)


@dataclass
class ImageLabels:
    """Labels of one image: visible-pixel boxes ``[x0, y0, x1, y1)`` (int, exclusive end)."""

    class_ids: np.ndarray  # int32 [N]
    boxes: np.ndarray  # int32 [N, 4] xyxy, x1/y1 exclusive
    areas: np.ndarray  # int64 [N] visible pixel counts
    width: int = 640
    height: int = 480

    def yolo_lines(self) -> str:
        """YOLO txt content (normalised cx cy w h, six decimals)."""
        lines = []
        for c, (x0, y0, x1, y1) in zip(self.class_ids.tolist(), self.boxes.tolist(), strict=True):
            cx = (x0 + x1) / 2.0 / self.width
            cy = (y0 + y1) / 2.0 / self.height
            lines.append(
                f"{c} {cx:.6f} {cy:.6f} {(x1 - x0) / self.width:.6f} {(y1 - y0) / self.height:.6f}\n"
            )
        return "".join(lines)


# --------------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------------
def _regular(n: int, radius: float, phase: float = -math.pi / 2) -> np.ndarray:
    t = phase + np.arange(n, dtype=np.float64) * (2.0 * math.pi / n)
    return np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)


def _unit_shape(class_id: int, aspect: float) -> list[np.ndarray]:
    """Polygons (outer first, holes after) of a class in a box of longer side 1, centred at 0."""
    name = CLASS_NAMES[class_id]
    if name in ("circle", "ellipse"):
        p = _regular(64, 0.5)
        return [p * np.array([1.0, aspect])]
    if name == "square":
        return [np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]]) * np.array([1.0, aspect])]
    if name == "triangle":
        p = _regular(3, 0.5)
        p[:, 1] += 0.125  # centre the box: vertices span y in [-0.5, 0.25]
        return [p / np.array([0.866, 0.75]) * np.array([1.0, aspect])]
    if name == "star":
        outer, inner = _regular(5, 0.5), _regular(5, 0.2, -math.pi / 2 + math.pi / 5)
        p = np.empty((10, 2))
        p[0::2], p[1::2] = outer, inner
        p[:, 1] += 0.05
        return [p * np.array([1.0, aspect])]
    if name == "cross":
        a = 0.17
        p = np.array(
            [
                [-a, -0.5], [a, -0.5], [a, -a], [0.5, -a], [0.5, a], [a, a],
                [a, 0.5], [-a, 0.5], [-a, a], [-0.5, a], [-0.5, -a], [-a, -a],
            ]
        )  # fmt: skip
        return [p * np.array([1.0, aspect])]
    if name == "ring":
        return [_regular(64, 0.5) * np.array([1.0, aspect]), _regular(64, 0.28) * np.array([1.0, aspect])]
    if name == "hexagon":
        return [_regular(6, 0.5, 0.0) * np.array([1.0, aspect])]
    if name == "diamond":
        return [np.array([[0.0, -0.5], [0.5 * aspect, 0.0], [0.0, 0.5], [-0.5 * aspect, 0.0]])]
    if name == "arrow":
        s, h = 0.1, 0.3
        p = np.array([[-0.5, -s], [0.1, -s], [0.1, -h], [0.5, 0.0], [0.1, h], [0.1, s], [-0.5, s]])
        return [p * np.array([1.0, aspect / 0.6])]
    raise ValueError(f"unknown class id {class_id}")


@dataclass(frozen=True)
class ShapeSpec:
    """Geometry of one object: class, size (px), rotation (rad) and aspect (height/width)."""

    class_id: int
    size: float
    angle: float
    aspect: float

    def polygons(self, cx: float, cy: float) -> list[np.ndarray]:
        """Absolute float vertices of the shape centred at (cx, cy)."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        rot = np.array([[c, s], [-s, c]])
        return [p * self.size @ rot + np.array([cx, cy]) for p in _unit_shape(self.class_id, self.aspect)]

    def extent(self) -> np.ndarray:
        """Amodal box ``[x0, y0, x1, y1]`` relative to the centre (float)."""
        outer = self.polygons(0.0, 0.0)[0]
        return np.concatenate([outer.min(axis=0), outer.max(axis=0)])


# Rotation limits keep look-alikes apart (a square at 45° is a diamond; a cross at 45° an "x").
_MAX_ANGLE = {"square": 15.0, "diamond": 15.0, "cross": 20.0}


def sample_shape(rng: np.random.Generator, class_id: int, size: float) -> ShapeSpec:
    """Draw rotation and aspect for a class (three draws, whatever the class)."""
    name = CLASS_NAMES[class_id]
    u_angle, u_aspect, _spare = rng.random(3)
    limit = _MAX_ANGLE.get(name, 180.0)
    angle = math.radians((2.0 * u_angle - 1.0) * limit)
    if name == "ellipse":
        aspect = 0.4 + 0.2 * u_aspect
    elif name == "diamond":
        aspect = 0.55 + 0.15 * u_aspect
    elif name == "arrow":
        aspect = 0.5 + 0.2 * u_aspect
    else:
        aspect = 0.85 + 0.15 * u_aspect
    return ShapeSpec(class_id, float(size), angle, aspect)


def class_colour(class_id: int, rng: np.random.Generator) -> np.ndarray:
    """BGR float colour of a class: fixed hue per class (36° apart) with small jitter."""
    u = rng.random(3)
    hue = (class_id / NUM_CLASSES + (u[0] - 0.5) * 0.04) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.55 + 0.45 * u[1], 0.55 + 0.45 * u[2])
    return np.array([b, g, r], dtype=np.float32)


def make_texture(
    h: int, w: int, base: np.ndarray, rng: np.random.Generator, kind: int | None = None
) -> np.ndarray:
    """A (h, w, 3) float32 fill: solid, stripes, checker, noise or gradient between two shades.

    Always draws the same number of values so callers' streams stay aligned; ``kind`` (0-4)
    overrides the drawn pattern (the tracking sequences give same-class objects different ones).
    """
    drawn, u1, u2, u3 = int(rng.integers(5)), *rng.random(3)
    kind = drawn if kind is None else kind
    lighter = u3 < 0.5
    shade = base + (1.0 - base) * (0.35 + 0.4 * u1) if lighter else base * (0.35 + 0.35 * u1)
    noise_grid = rng.random((4, 4)).astype(np.float32)
    if kind == 0:
        return np.broadcast_to(base, (h, w, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = u2 * math.pi
    if kind == 1:
        period = 3.0 + 9.0 * u1
        m = np.floor((xx * math.cos(theta) + yy * math.sin(theta)) / period) % 2.0
    elif kind == 2:
        cell = 3 + int(7 * u2)
        m = ((xx // cell + yy // cell) % 2.0).astype(np.float32)
    elif kind == 3:
        m = cv2.resize(noise_grid, (w, h), interpolation=cv2.INTER_CUBIC).clip(0.0, 1.0)
    else:
        ramp = xx * math.cos(theta) + yy * math.sin(theta)
        m = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1.0)
    m = m[..., None].astype(np.float32)
    return (base * (1.0 - m) + shade.astype(np.float32) * m).astype(np.float32)


@dataclass
class Raster:
    """A shape rasterised into its (unclipped) box: binary mask for labels, AA alpha for drawing."""

    x0: int
    y0: int
    mask: np.ndarray  # bool [h, w]
    alpha: np.ndarray  # float32 [h, w] in [0, 1]


def rasterise(polys: Sequence[np.ndarray]) -> Raster:
    """Fill polygons (holes by even-odd) with cv2.fillPoly in fixed point.

    The label mask uses ``LINE_8`` (integer scan conversion of fixed-point vertices: no floating
    point inside OpenCV); the anti-aliased alpha is only for looks.
    """
    allp = np.concatenate(polys)
    x0 = math.floor(float(allp[:, 0].min())) - 1
    y0 = math.floor(float(allp[:, 1].min())) - 1
    w = math.ceil(float(allp[:, 0].max())) + 2 - x0
    h = math.ceil(float(allp[:, 1].max())) + 2 - y0
    pts = [np.round((p - np.array([x0, y0])) * _ONE).astype(np.int32) for p in polys]
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, pts, 1, cv2.LINE_8, _SHIFT)
    alpha = np.zeros((h, w), np.uint8)
    cv2.fillPoly(alpha, pts, 255, cv2.LINE_AA, _SHIFT)
    return Raster(x0, y0, mask.astype(bool), alpha.astype(np.float32) / 255.0)


def _clip_window(
    x0: int, y0: int, h: int, w: int, width: int, height: int
) -> tuple[slice, slice, slice, slice]:
    """(frame rows, frame cols, local rows, local cols) of a local box clipped to the frame."""
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + w, width), min(y0 + h, height)
    if fx1 <= fx0 or fy1 <= fy0:
        return slice(0, 0), slice(0, 0), slice(0, 0), slice(0, 0)
    return slice(fy0, fy1), slice(fx0, fx1), slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0)


def composite(canvas: np.ndarray, raster: Raster, texture: np.ndarray, tex_x0: int, tex_y0: int) -> None:
    """Alpha-blend ``texture`` (anchored at frame pixel tex_x0, tex_y0) through the raster's alpha."""
    height, width = canvas.shape[:2]
    h, w = raster.alpha.shape
    fr, fc, lr, lc = _clip_window(raster.x0, raster.y0, h, w, width, height)
    if fr.stop == 0:
        return
    ty, tx = fr.start - tex_y0, fc.start - tex_x0
    tex = texture[ty : ty + (fr.stop - fr.start), tx : tx + (fc.stop - fc.start)]
    a = raster.alpha[lr, lc][..., None]
    canvas[fr, fc] = canvas[fr, fc] * (1.0 - a) + tex * a


# --------------------------------------------------------------------------------------------
# Backgrounds and effects
# --------------------------------------------------------------------------------------------
@lru_cache(maxsize=len(PHOTO_FILES))
def _load_photo(name: str) -> np.ndarray | None:
    """A bundled scikit-image photo as BGR float32, or None where this wheel lacks it."""
    try:
        import skimage.data as skd  # only the bundled files are read: no pooch download

        path = Path(skd.__file__).parent / name
    except ImportError:
        return None
    img = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
    return None if img is None else img.astype(np.float32) / 255.0


def available_photos() -> list[str]:
    """Names in :data:`PHOTO_FILES` that this installation ships."""
    return [n for n in PHOTO_FILES if _load_photo(n) is not None]


def _value_noise(rng: np.random.Generator, width: int, height: int, octaves: int = 3) -> np.ndarray:
    """Smooth [0, 1] noise: bilinearly upsampled random grids at several scales (no per-pixel loop)."""
    acc = np.zeros((height, width), np.float32)
    total = 0.0
    for o in range(octaves):
        gh, gw = 3 * 2**o, 4 * 2**o
        weight = 0.55**o
        grid = rng.random((gh, gw)).astype(np.float32)
        acc += weight * cv2.resize(grid, (width, height), interpolation=cv2.INTER_LINEAR)
        total += weight
    acc /= total
    lo, hi = float(acc.min()), float(acc.max())
    return (acc - lo) / max(hi - lo, 1e-6)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.random(3).astype(np.float32)


def make_background(rng: np.random.Generator, width: int, height: int, photo_prob: float = 0.4) -> np.ndarray:
    """BGR float32 background: linear/radial gradient, value noise or a bundled photo crop."""
    u = rng.random(8)
    c0, c1 = _random_colour(rng), _random_colour(rng)
    noise = _value_noise(rng, width, height)
    if u[0] < photo_prob:
        photos = PHOTO_FILES
        img = _load_photo(photos[int(u[1] * len(photos)) % len(photos)])
        if img is not None:
            ph, pw = img.shape[:2]
            scale = 0.35 + 0.65 * u[2]
            cw = min(pw, math.floor(min(pw, ph * width / height) * scale + 0.5))
            ch = min(ph, max(math.floor(cw * height / width + 0.5), 1))
            x = int(u[3] * (pw - cw + 1))
            y = int(u[4] * (ph - ch + 1))
            crop = cv2.resize(img[y : y + ch, x : x + cw], (width, height), interpolation=cv2.INTER_LINEAR)
            if u[5] < 0.5:
                crop = crop[:, ::-1]
            gain = 0.6 + 0.6 * c0  # per-channel colour cast
            return np.ascontiguousarray(np.clip(crop * gain, 0.0, 1.0), dtype=np.float32)
        return c0 * (1.0 - noise[..., None]) + c1 * noise[..., None]
    yy, xx = (a.astype(np.float32) for a in np.ogrid[0:height, 0:width])
    kind = int(u[6] * 3)
    if kind == 0:
        theta = u[7] * 2.0 * math.pi
        ramp = xx * math.cos(theta) + yy * math.sin(theta)
        m = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1.0)
    elif kind == 1:
        cx, cy = u[2] * width, u[3] * height
        m = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
        m /= max(float(m.max()), 1.0)
    else:
        m = noise
    m = m[..., None]
    out = c0 * (1.0 - m) + c1 * m
    # Low-contrast mottling so that gradients are not perfectly smooth.
    out += (noise[..., None] - 0.5) * 0.08
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def apply_effects(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Lighting gradient, colour cast, gamma, blur, sensor noise; returns (uint8 BGR, JPEG quality).

    Gain and cast are applied in float; gamma (a 256-entry LUT), blur and noise then work on
    8-bit data, which keeps an image at a few milliseconds.
    """
    height, width = img.shape[:2]
    u = rng.random(12)
    yy, xx = np.ogrid[0:height, 0:width]
    theta = u[0] * 2.0 * math.pi
    ramp = (xx * math.cos(theta) + yy * math.sin(theta)).astype(np.float32)
    ramp -= ramp.min()
    ramp *= np.float32(0.5 * u[2] / max(float(ramp.max()), 1e-6))
    ramp += np.float32(0.65 + 0.35 * u[1])
    cast = (0.85 + 0.3 * rng.random(3)).astype(np.float32) * np.float32(255.0)
    out = cv2.convertScaleAbs(img * ramp[..., None] * cast)  # saturating round to uint8
    gamma = 0.75 + 0.6 * u[3]
    lut = np.clip(np.power(np.arange(256) / 255.0, gamma) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    out = cv2.LUT(out, lut)
    if u[4] < 0.35:
        out = cv2.GaussianBlur(out, (0, 0), 0.4 + 1.2 * u[5])
    elif u[4] < 0.5:
        length = 3 + int(6 * u[5])
        k = np.zeros((length, length), np.float32)
        c = (length - 1) / 2.0
        ang = u[6] * math.pi
        p0 = (math.floor(c - c * math.cos(ang) + 0.5), math.floor(c - c * math.sin(ang) + 0.5))
        p1 = (math.floor(c + c * math.cos(ang) + 0.5), math.floor(c + c * math.sin(ang) + 0.5))
        cv2.line(k, p0, p1, 1.0, 1)
        out = cv2.filter2D(out, -1, k / max(float(k.sum()), 1.0))
    noise = rng.standard_normal((height, width, 1), dtype=np.float32) * np.float32(8.0 * u[7])
    out = cv2.convertScaleAbs(out.astype(np.float32) + noise)
    quality = 35 + int(61 * u[8])
    return out, min(quality, 95)


def encode_jpeg(img: np.ndarray, quality: int) -> bytes:
    """JPEG bytes at ``quality`` (the compression noise is part of the data)."""
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("cv2.imencode failed to write a JPEG")
    return buf.tobytes()


# --------------------------------------------------------------------------------------------
# Detection scenes
# --------------------------------------------------------------------------------------------
@dataclass
class _Placed:
    class_id: int  # -1 for clutter
    mask: np.ndarray  # bool [H, W]: the pixels of this shape still in view
    full_area: int  # pixels of the whole (unclipped) shape
    visible: int  # == count_nonzero(mask), kept up to date to avoid recounting


@dataclass(frozen=True)
class _Bar:
    """A long thin rotated bar: not one of the classes, used as an occluder/distractor."""

    length: float
    thick: float
    angle: float

    @classmethod
    def sample(cls, rng: np.random.Generator, cfg: SceneConfig) -> _Bar:
        u = rng.random(3)
        return cls((0.25 + 0.6 * u[0]) * max(cfg.width, cfg.height), 5.0 + 35.0 * u[1], u[2] * math.pi)

    def polygons(self, cx: float, cy: float) -> list[np.ndarray]:
        c, s = math.cos(self.angle), math.sin(self.angle)
        half = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]) * np.array(
            [self.length, self.thick]
        )
        return [half / 2.0 @ np.array([[c, s], [-s, c]]) + np.array([cx, cy])]


def _try_place(placed: list[_Placed], raster: Raster, cfg: SceneConfig, is_object: bool) -> _Placed | None:
    """Place the shape if every object (itself included) keeps >= min_visible of its pixels.

    Only the shape's own window of the frame is touched, so a placement costs O(shape area).
    """
    h, w = raster.mask.shape
    fr, fc, lr, lc = _clip_window(raster.x0, raster.y0, h, w, cfg.width, cfg.height)
    full_area = int(np.count_nonzero(raster.mask))
    local = raster.mask[lr, lc]
    in_view = int(np.count_nonzero(local))
    if in_view == 0 or (is_object and in_view < cfg.min_visible * full_area):
        return None
    losses = []
    for p in placed:
        lost = int(np.count_nonzero(p.mask[fr, fc] & local)) if p.class_id >= 0 else 0
        if lost and p.visible - lost < cfg.min_visible * p.full_area:
            return None
        losses.append(lost)
    for p, lost in zip(placed, losses, strict=True):
        p.mask[fr, fc] &= ~local
        p.visible -= lost
    mask = np.zeros((cfg.height, cfg.width), bool)
    mask[fr, fc] = local
    return _Placed(-1, mask, full_area, in_view)


def render_detection_image(
    seed: int, split_id: int, index: int, cfg: SceneConfig | None = None
) -> tuple[np.ndarray, ImageLabels, int]:
    """Render one image; returns (uint8 BGR image, labels, JPEG quality to save it with)."""
    cfg = (cfg or SceneConfig()).validate()
    rng_bg, rng_obj, rng_fx = (np.random.default_rng([seed, split_id, index, k]) for k in range(3))
    canvas = make_background(rng_bg, cfg.width, cfg.height, cfg.photo_prob)
    n_obj = int(rng_obj.integers(cfg.min_objects, cfg.max_objects + 1))
    n_clutter = int(rng_obj.integers(0, cfg.max_clutter + 1))
    # Clutter bars are interleaved with objects at random depths.
    order = np.array([1] * n_obj + [0] * n_clutter)[rng_obj.permutation(n_obj + n_clutter)]
    placed: list[_Placed] = []
    log_span = math.log(cfg.max_size / cfg.min_size)
    for is_object in order.tolist():
        shape: ShapeSpec | _Bar
        if is_object:
            class_id = int(rng_obj.integers(NUM_CLASSES))
            size = cfg.min_size * math.exp(log_span * float(rng_obj.random()) ** cfg.size_bias)
            shape = sample_shape(rng_obj, class_id, size)
            colour = class_colour(class_id, rng_obj)
            margin = 0.2 * size
        else:
            class_id = -1
            shape = _Bar.sample(rng_obj, cfg)
            grey = 0.2 + 0.6 * float(rng_obj.random())
            colour = np.float32(grey) * (0.8 + 0.4 * rng_obj.random(3).astype(np.float32))
            margin = 0.0
        tex_rng = np.random.default_rng(rng_obj.integers(2**63))
        positions = rng_obj.random((cfg.placement_tries, 2))  # a fixed number of draws per shape
        for px, py in positions.tolist():
            cx = -margin + px * (cfg.width + 2 * margin)
            cy = -margin + py * (cfg.height + 2 * margin)
            raster = rasterise(shape.polygons(cx, cy))
            new = _try_place(placed, raster, cfg, bool(is_object))
            if new is None:
                continue
            new.class_id = class_id
            h, w = raster.mask.shape
            composite(canvas, raster, make_texture(h, w, colour, tex_rng), raster.x0, raster.y0)
            placed.append(new)
            break
    image, quality = apply_effects(canvas, rng_fx)
    objs = [p for p in placed if p.class_id >= 0]
    boxes = np.zeros((len(objs), 4), np.int32)
    for i, p in enumerate(objs):
        rows, cols = np.flatnonzero(p.mask.any(axis=1)), np.flatnonzero(p.mask.any(axis=0))
        boxes[i] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    labels = ImageLabels(
        class_ids=np.array([p.class_id for p in objs], np.int32),
        boxes=boxes,
        areas=np.array([p.visible for p in objs], np.int64),
        width=cfg.width,
        height=cfg.height,
    )
    return image, labels, quality


# --------------------------------------------------------------------------------------------
# Dataset writers
# --------------------------------------------------------------------------------------------
def _worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core already


def parallel_map(fn: Callable[[T], R], items: Iterable[T], workers: int, chunksize: int = 8) -> list[R]:
    """Ordered map, in-process for ``workers <= 1``, else a spawn-context Pool.

    spawn (not fork) so that OpenCV/BLAS thread pools of the parent are never inherited mid-state.
    """
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [fn(i) for i in items]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(min(workers, len(items)), initializer=_worker_init) as pool:
        return list(pool.imap(fn, items, chunksize=chunksize))


@dataclass(frozen=True)
class _DetJob:
    seed: int
    split_id: int
    index: int
    image_path: str
    cfg: SceneConfig


def _detection_job(job: _DetJob) -> ImageLabels:
    image, labels, quality = render_detection_image(job.seed, job.split_id, job.index, job.cfg)
    Path(job.image_path).write_bytes(encode_jpeg(image, quality))
    return labels


def coco_dict(files: Sequence[str], labels: Sequence[ImageLabels]) -> dict[str, Any]:
    """COCO detection dict (category ids 0..9 = class index, ids from 1, bbox xywh pixels)."""
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    for img_id, (name, lab) in enumerate(zip(files, labels, strict=True), start=1):
        images.append({"id": img_id, "file_name": name, "width": lab.width, "height": lab.height})
        for c, (x0, y0, x1, y1), area in zip(
            lab.class_ids.tolist(), lab.boxes.tolist(), lab.areas.tolist(), strict=True
        ):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": img_id,
                    "category_id": c,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": area,
                    "iscrowd": 0,
                }
            )
    cats = [{"id": i, "name": n, "supercategory": "shape"} for i, n in enumerate(CLASS_NAMES)]
    return {
        "info": {"description": "yolov8_trt_ros synthetic shapes", "version": GENERATOR_VERSION},
        "images": images,
        "annotations": anns,
        "categories": cats,
    }


@dataclass
class DatasetRecord:
    """What ``generator.json`` records: enough to regenerate the data bit for bit."""

    generator_version: str
    seed: int
    sizes: dict[str, int]
    config: dict[str, Any]
    class_names: list[str]
    photos_found: list[str] = field(default_factory=list)


def generate_detection_dataset(
    out_dir: str | os.PathLike[str],
    seed: int,
    n_train: int,
    n_val: int,
    n_calib: int,
    width: int = 640,
    height: int = 480,
    workers: int = 1,
    config: SceneConfig | None = None,
) -> Path:
    """Write a YOLO-format dataset (+ COCO json for val) and return its root (holds data.yaml).

    Layout: ``images/{train,val,calib}/NNNNNN.jpg``, ``labels/{train,val,calib}/NNNNNN.txt``,
    ``annotations/instances_val.json``, ``data.yaml`` (relative paths, so the folder can move)
    and ``generator.json``. ``config`` overrides scene knobs; ``width``/``height`` win over it.
    """
    sizes = {"train": n_train, "val": n_val, "calib": n_calib}
    for k, v in sizes.items():
        if v < 0:
            raise ValueError(f"n_{k} must be >= 0, got {v}")
    cfg = SceneConfig(**{**asdict(config or SceneConfig()), "width": width, "height": height}).validate()
    root = Path(out_dir)
    jobs: list[_DetJob] = []
    for split, n in sizes.items():
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        jobs += [
            _DetJob(seed, SPLIT_IDS[split], i, str(root / "images" / split / f"{i:06d}.jpg"), cfg)
            for i in range(n)
        ]
    results = parallel_map(_detection_job, jobs, workers)
    val_files, val_labels = [], []
    for job, lab in zip(jobs, results, strict=True):
        img = Path(job.image_path)
        split = img.parent.name
        (root / "labels" / split / f"{img.stem}.txt").write_text(lab.yolo_lines())
        if split == "val":
            val_files.append(f"images/val/{img.name}")
            val_labels.append(lab)
    (root / "annotations").mkdir(exist_ok=True)
    (root / "annotations" / "instances_val.json").write_text(json.dumps(coco_dict(val_files, val_labels)))
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(CLASS_NAMES))
    (root / "data.yaml").write_text(
        f"# yolov8_trt_ros synthetic shapes, generator {GENERATOR_VERSION}, seed {seed}\n"
        "# 'path' is left out: ultralytics then resolves the splits next to this file.\n"
        f"train: images/train\nval: images/val\ncalib: images/calib\nnc: {NUM_CLASSES}\nnames:\n{names}\n"
    )
    record = DatasetRecord(GENERATOR_VERSION, seed, sizes, asdict(cfg), list(CLASS_NAMES), available_photos())
    (root / "generator.json").write_text(json.dumps(asdict(record), indent=2) + "\n")
    return root


def label_digest(root: str | os.PathLike[str], split: str = "val") -> str:
    """sha256 over a split's label files (sorted names + bytes) and its COCO json if any.

    ``models/test/MANIFEST.json`` records it for val and calib, so a regeneration elsewhere can be
    checked to be byte-identical to the data the test model was trained and validated on.
    """
    root = Path(root)
    h = hashlib.sha256()
    for p in sorted((root / "labels" / split).glob("*.txt")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    coco = root / "annotations" / f"instances_{split}.json"
    if coco.is_file():
        h.update(coco.read_bytes())
    return h.hexdigest()
