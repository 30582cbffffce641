"""Raw ROS image buffers → validated views; compressed frames → bgr8; one error type for bad input."""

from __future__ import annotations

import array

import cv2
import numpy as np
import pytest

from yolov8_trt_ros.core.image_input import (
    ImageError,
    check_image,
    decode_compressed,
    image_from_buffer,
)
from yolov8_trt_ros.core.types import BYTES_PER_PIXEL, SUPPORTED_ENCODINGS


def _padded_buffer(image: np.ndarray, step: int) -> np.ndarray:
    """The image's rows laid out ``step`` bytes apart, padding filled with junk."""
    h = image.shape[0]
    row = image.reshape(h, -1)
    buf = np.full((h, step), 0xAB, dtype=np.uint8)
    buf[:, : row.shape[1]] = row
    return buf.reshape(-1)


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
@pytest.mark.parametrize("extra", [0, 1, 7])
def test_view_matches_source_without_copy(encoding, extra):
    rng = np.random.default_rng(hash((encoding, extra)) % 2**32)
    bpp = BYTES_PER_PIXEL[encoding]
    h, w = 13, 22
    image = rng.integers(0, 256, (h, w, bpp), dtype=np.uint8)
    step = w * bpp + extra  # extra=1, 7: rows not a multiple of the pixel size, still valid
    buf = _padded_buffer(image, step)
    view = image_from_buffer(buf, w, h, step, encoding)
    assert view.shape == (h, w, bpp) and view.dtype == np.uint8
    np.testing.assert_array_equal(view, image)
    assert np.shares_memory(view, buf), "the view must not copy the message data"


def test_bytes_memoryview_and_array_buffers_are_read_only_views():
    image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    for data in (image.tobytes(), memoryview(image.tobytes()), array.array("B", image.tobytes())):
        view = image_from_buffer(data, 6, 4, 18, "bgr8")
        np.testing.assert_array_equal(view, image)
        assert not view.flags.writeable


def test_list_data_is_accepted():
    image = np.arange(2 * 3, dtype=np.uint8).reshape(2, 3, 1)
    view = image_from_buffer(image.reshape(-1).tolist(), 3, 2, 3, "mono8")
    np.testing.assert_array_equal(view, image)


def test_longer_data_than_needed_is_accepted_and_ignored():
    image = np.arange(2 * 4 * 3, dtype=np.uint8).reshape(2, 4, 3)
    view = image_from_buffer(image.tobytes() + b"\x00" * 5, 4, 2, 12, "rgb8")
    np.testing.assert_array_equal(view, image)


def test_is_bigendian_does_not_matter_for_8bit_encodings():
    data = bytes(range(24))
    a = image_from_buffer(data, 4, 2, 12, "bgr8", is_bigendian=False)
    b = image_from_buffer(data, 4, 2, 12, "bgr8", is_bigendian=True)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"encoding": "16UC1"}, "unsupported encoding"),
        ({"encoding": "yuv422"}, "unsupported encoding"),  # UYVY in ROS: not supported
        ({"width": 0}, "zero"),
        ({"height": 0}, "zero"),
        ({"width": -3}, "zero"),
        ({"data": bytes(10 * 8 * 3 - 1)}, r"fewer than step\*height"),
        ({"step": 10 * 3 - 1}, "smaller than width"),
        ({"max_pixels": 10 * 8 - 1}, "max_pixels"),
        ({"data": object()}, "not a byte buffer"),
        ({"encoding": "yuv422_yuy2", "width": 9, "step": 20}, "even width"),
    ],
)
def test_bad_input_raises_image_error(kwargs, message):
    args = {"data": bytes(10 * 8 * 3), "width": 10, "height": 8, "step": 30, "encoding": "bgr8"}
    args.update(kwargs)
    with pytest.raises(ImageError, match=message):
        image_from_buffer(**args)


def test_image_error_is_a_value_error():
    assert issubclass(ImageError, ValueError)


def test_check_image_validates_arrays():
    rng = np.random.default_rng(1)
    mono = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    assert check_image(mono, "mono8").shape == (5, 7, 1)
    with pytest.raises(ImageError, match="uint8"):
        check_image(mono.astype(np.float32), "mono8")
    with pytest.raises(ImageError, match=r"\[H, W, 3\]"):
        check_image(mono, "bgr8")
    with pytest.raises(ImageError, match="unsupported"):
        check_image(mono, "bayer_rggb8")
    with pytest.raises(ImageError, match="NumPy"):
        check_image([[1, 2]], "mono8")
    bgr = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    flipped = check_image(bgr[:, :, ::-1], "rgb8")  # reversed channel axis: copied, same values
    np.testing.assert_array_equal(flipped, bgr[:, :, ::-1])
    assert flipped.strides[1:] == (3, 1)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_decode_compressed_matches_opencv(ext):
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (31, 45, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(ext, image)
    assert ok
    decoded = decode_compressed(encoded.tobytes())
    assert decoded.shape == (31, 45, 3) and decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, cv2.imdecode(encoded, cv2.IMREAD_COLOR))
    if ext == ".png":  # lossless
        np.testing.assert_array_equal(decoded, image)


def test_decode_grey_png_gives_three_channels():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    _, encoded = cv2.imencode(".png", grey)
    decoded = decode_compressed(encoded.tobytes())
    np.testing.assert_array_equal(decoded, np.repeat(grey[:, :, None], 3, axis=2))


def test_decode_bad_data_raises_image_error():
    rng = np.random.default_rng(3)
    _, png = cv2.imencode(".png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    with pytest.raises(ImageError, match="empty"):
        decode_compressed(b"")
    with pytest.raises(ImageError, match="cannot decode"):
        decode_compressed(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(ImageError, match="cannot decode"):
        decode_compressed(png.tobytes()[:40])  # header only
    with pytest.raises(ImageError, match="max_pixels"):
        decode_compressed(png.tobytes(), max_pixels=16 * 16 - 1)
