"""CPU preprocessing against ultralytics' LetterBox, and every encoding against its bgr8 twin."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from yolov8_trt_ros.core.config import PreprocessConfig
from yolov8_trt_ros.core.image_input import ImageError, image_from_buffer
from yolov8_trt_ros.core.preprocess import CpuPreprocessor

TOL = 1.0 / 255.0 + 1e-6


def _ultralytics_tensor(bgr: np.ndarray, width: int, height: int) -> tuple[np.ndarray, dict]:
    """What ultralytics' predictor feeds the network: LetterBox, BGR→RGB, CHW, / 255."""
    from ultralytics.data.augment import LetterBox

    lb = LetterBox(new_shape=(height, width))
    params = lb.get_params({"img": bgr})
    padded = lb(image=bgr)
    return padded[..., ::-1].transpose(2, 0, 1).astype(np.float32) / 255.0, params


@pytest.mark.parametrize("name", ["bus.jpg", "zidane.jpg"])
@pytest.mark.parametrize(("width", "height"), [(640, 640), (640, 384), (320, 416)])
def test_matches_ultralytics_letterbox(assets_dir, name, width, height):
    bgr = cv2.imread(str(assets_dir / name))
    ref, params = _ultralytics_tensor(bgr, width, height)
    out, lbs = CpuPreprocessor(PreprocessConfig(input_width=width, input_height=height))([bgr], ["bgr8"])
    assert out.shape == (1, 3, height, width) and out.dtype == np.float32
    assert np.abs(out[0] - ref).max() <= TOL
    lb = lbs[0]
    assert (lb.pad_x, lb.pad_y) == (params["left"], params["top"])
    assert (lb.resized_w, lb.resized_h) == params["new_unpad"]
    assert (lb.src_w, lb.src_h) == (bgr.shape[1], bgr.shape[0])


def test_fp16_output(assets_dir):
    bgr = cv2.imread(str(assets_dir / "bus.jpg"))
    ref, _ = _ultralytics_tensor(bgr, 640, 640)
    out, _ = CpuPreprocessor(PreprocessConfig(fp16=True))([bgr], ["bgr8"])
    assert out.dtype == np.float16
    # fp16 rounding of values in [0, 1] is at most 2^-12 on top of the 1/255 budget
    assert np.abs(out[0].astype(np.float32) - ref).max() <= TOL + 2.0**-11


def _random_bgr(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    # Smooth structure plus noise, so the resize has something to interpolate.
    base = cv2.resize(rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8), (w, h))
    return cv2.add(base, rng.integers(0, 40, (h, w, 3), dtype=np.uint8))


def _as_encoding(bgr: np.ndarray, encoding: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(image in ``encoding``, the same image converted to bgr8 by OpenCV)."""
    if encoding == "bgr8":
        return bgr, bgr
    if encoding == "rgb8":
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), bgr
    if encoding == "mono8":
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        return grey[:, :, None], cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    if encoding == "bgra8":
        bgra = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
        bgra[:, :, 3] = rng.integers(0, 256, bgr.shape[:2], dtype=np.uint8)  # alpha must be ignored
        return bgra, bgr
    if encoding == "rgba8":
        rgba = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGBA)
        rgba[:, :, 3] = rng.integers(0, 256, bgr.shape[:2], dtype=np.uint8)
        return rgba, bgr
    assert encoding == "yuv422_yuy2"
    yuyv = rng.integers(0, 256, (bgr.shape[0], bgr.shape[1], 2), dtype=np.uint8)
    return yuyv, cv2.cvtColor(yuyv, cv2.COLOR_YUV2BGR_YUY2)


@pytest.mark.parametrize("encoding", ["rgb8", "mono8", "bgra8", "rgba8", "yuv422_yuy2"])
@pytest.mark.parametrize(("h", "w"), [(480, 640), (1080, 1920), (301, 200)])
def test_encodings_match_converting_to_bgr_first(encoding, h, w):
    rng = np.random.default_rng(h * w + len(encoding))
    image, as_bgr = _as_encoding(_random_bgr(rng, h, w), encoding, rng)
    pre = CpuPreprocessor(PreprocessConfig())
    out, lbs = pre([image], [encoding])
    out = out.copy()
    ref, ref_lbs = CpuPreprocessor(PreprocessConfig())([as_bgr], ["bgr8"])
    assert lbs == ref_lbs
    assert np.abs(out - ref).max() <= TOL


def test_batch_of_mixed_encodings_equals_single_images():
    rng = np.random.default_rng(5)
    sizes = [(480, 640), (720, 1280), (333, 517), (640, 640)]
    encodings = ["bgr8", "yuv422_yuy2", "mono8", "rgba8"]
    images = [
        _as_encoding(_random_bgr(rng, h, w), e, rng)[0] for (h, w), e in zip(sizes, encodings, strict=True)
    ]
    out, lbs = CpuPreprocessor(PreprocessConfig())(images, encodings)
    for i, (img, enc) in enumerate(zip(images, encodings, strict=True)):
        single, single_lb = CpuPreprocessor(PreprocessConfig())([img], [enc])
        np.testing.assert_array_equal(out[i], single[0])
        assert lbs[i] == single_lb[0]


def test_buffer_is_reused_and_padding_follows_the_new_geometry():
    rng = np.random.default_rng(6)
    pre = CpuPreprocessor(PreprocessConfig())
    wide, tall = _random_bgr(rng, 360, 640), _random_bgr(rng, 640, 360)
    first, _ = pre([wide], ["bgr8"])
    second, _ = pre([tall], ["bgr8"])
    assert second is first, "the batch tensor must be preallocated and reused"
    fresh, _ = CpuPreprocessor(PreprocessConfig())([tall], ["bgr8"])
    np.testing.assert_array_equal(second, fresh)  # no stale pixels of the wide frame
    again, _ = pre([wide], ["bgr8"])
    np.testing.assert_array_equal(again, CpuPreprocessor(PreprocessConfig())([wide], ["bgr8"])[0])


def test_padding_value_and_range():
    rng = np.random.default_rng(7)
    out, lbs = CpuPreprocessor(PreprocessConfig(pad_value=50))([_random_bgr(rng, 100, 400)], ["bgr8"])
    lb = lbs[0]
    assert lb.pad_y > 0
    np.testing.assert_array_equal(out[0, :, : int(lb.pad_y)], np.float32(50) / np.float32(255))
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_padded_rows_from_a_ros_buffer():
    rng = np.random.default_rng(8)
    bgr = _random_bgr(rng, 121, 163)
    step = 163 * 3 + 5
    buf = np.zeros((121, step), np.uint8)
    buf[:, : 163 * 3] = bgr.reshape(121, -1)
    view = image_from_buffer(buf.tobytes(), 163, 121, step, "bgr8")
    out, _ = CpuPreprocessor(PreprocessConfig())([view], ["bgr8"])
    out = out.copy()
    ref, _ = CpuPreprocessor(PreprocessConfig())([bgr], ["bgr8"])
    np.testing.assert_array_equal(out, ref)


def test_extremely_thin_image_keeps_one_pixel():
    rng = np.random.default_rng(9)
    out, lbs = CpuPreprocessor(PreprocessConfig())([rng.integers(0, 256, (1999, 1, 3), np.uint8)], ["bgr8"])
    assert lbs[0].src_w == 1
    column = out[0, :, :, int(lbs[0].pad_x)]
    assert np.any(column != np.float32(114) / np.float32(255))


def test_bad_batches_raise_image_error():
    pre = CpuPreprocessor(PreprocessConfig())
    img = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ImageError, match="encodings"):
        pre([img, img], ["bgr8"])
    with pytest.raises(ImageError, match="empty"):
        pre([], [])
    with pytest.raises(ImageError, match="unsupported"):
        pre([img], ["32FC1"])
    with pytest.raises(ImageError, match=r"\[H, W, 4\]"):
        pre([img], ["bgra8"])
    with pytest.raises(ImageError, match="max_pixels"):
        CpuPreprocessor(PreprocessConfig(max_image_pixels=99))([img], ["bgr8"])
