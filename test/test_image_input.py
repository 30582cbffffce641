"""Raw ROS image buffers → validated views; compressed frames → bgr8; one error type for bad input."""

from __future__ import annotations

import array
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolov8_trt_ros.core.image_input import (
    ImageError,
    check_image,
    compressed_size,
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
    h, w = 14, 22
    rows = h * 3 // 2 if encoding in ("nv12", "nv21") else h  # Y plane + UV plane
    dtype = np.dtype("<u2") if encoding == "mono16" else np.dtype(np.uint8)
    channels = bpp // dtype.itemsize
    image = rng.integers(0, 256**dtype.itemsize, (rows, w, channels)).astype(dtype)
    step = w * bpp + extra  # extra=1, 7: rows not a multiple of the pixel size, still valid
    buf = _padded_buffer(image.view(np.uint8), step)
    view = image_from_buffer(buf, w, h, step, encoding)
    assert view.shape == (rows, w, channels) and view.dtype == dtype
    np.testing.assert_array_equal(view, image)
    assert np.shares_memory(view, buf), "the view must not copy the message data"


@pytest.mark.parametrize(("alias", "canonical"), [("8UC3", "bgr8"), ("8UC1", "mono8"), ("16UC1", "mono16")])
def test_opencv_type_names_are_read_as_their_encoding(alias, canonical):
    rng = np.random.default_rng(4)
    data = rng.integers(0, 256, 6 * 5 * 3, dtype=np.uint8).tobytes()
    bpp = BYTES_PER_PIXEL[canonical]
    a = image_from_buffer(data, 5, 6, 5 * bpp, alias)
    b = image_from_buffer(data, 5, 6, 5 * bpp, canonical)
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)


def test_big_endian_16bit_is_a_view_with_swapped_byte_order():
    values = np.array([[0x0102, 0xFF00, 0x00FF], [0x8000, 0x1234, 0xFFFF]], np.uint16)
    big = image_from_buffer(values.astype(">u2").tobytes(), 3, 2, 6, "mono16", is_bigendian=True)
    little = image_from_buffer(values.astype("<u2").tobytes(), 3, 2, 6, "16UC1", is_bigendian=False)
    assert big.dtype == np.dtype(">u2") and little.dtype == np.dtype("<u2")
    np.testing.assert_array_equal(big[:, :, 0], values)
    np.testing.assert_array_equal(little[:, :, 0], values)
    # Read the other way round, the same bytes are other numbers: the flag is not ignored.
    swapped = image_from_buffer(values.astype(">u2").tobytes(), 3, 2, 6, "mono16", is_bigendian=False)
    assert swapped[0, 0, 0] == 0x0201


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
        ({"encoding": "32FC1"}, "unsupported encoding"),
        ({"encoding": "bayer_rggb16"}, "unsupported encoding"),
        ({"encoding": "yuv422", "width": 9, "step": 20}, "even width"),  # UYVY
        ({"encoding": "uyvy", "width": 9, "step": 20}, "even width"),
        ({"encoding": "nv12", "width": 9, "step": 10}, "even width"),
        ({"encoding": "nv21", "height": 7}, "even height"),
        (
            {"encoding": "nv12", "width": 10, "step": 10, "data": bytes(10 * 8 * 3 // 2 - 1)},
            r"step\*height\*3/2",
        ),
        ({"encoding": "mono16", "step": 10 * 2 - 1}, "smaller than width"),
        ({"encoding": "16UC1", "data": bytes(10 * 8 * 2 - 1), "step": 20}, r"fewer than step\*height"),
        ({"encoding": "bayer_grbg8", "width": 2, "step": 2}, "3x3"),
        ({"encoding": "bayer_rggb8", "height": 2}, "3x3"),
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
        check_image(mono, "32FC1")
    with pytest.raises(ImageError, match="uint16"):
        check_image(mono, "mono16")
    deep = rng.integers(0, 65536, (5, 7), dtype=np.uint16)
    assert check_image(deep, "16UC1").shape == (5, 7, 1)
    assert check_image(deep.astype(">u2"), "mono16").dtype == np.dtype(">u2")
    with pytest.raises(ImageError, match="rows"):
        check_image(rng.integers(0, 256, (10, 8), dtype=np.uint8), "nv12")  # 10 is not 3 * H / 2
    assert check_image(rng.integers(0, 256, (12, 8), dtype=np.uint8), "nv21").shape == (12, 8, 1)
    with pytest.raises(ImageError, match="even width"):
        check_image(rng.integers(0, 256, (9, 7), dtype=np.uint8), "nv12")

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


def _png_bomb(width: int, height: int) -> bytes:
    """A valid all-black RGB PNG of ``width`` x ``height``, built row by row in little memory."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    packer = zlib.compressobj(9)
    row = bytes(1 + 3 * width)  # filter byte 0, then black pixels
    idat = b"".join([packer.compress(row) for _ in range(height)] + [packer.flush()])
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# Peak RSS from /proc (VmHWM, in kB): ru_maxrss would not do, since Linux carries the parent's
# peak over fork and exec into the child's, so a child of a large pytest starts "at its peak".
_MEASURE_DECODE = """
import sys
from yolov8_trt_ros.core.image_input import ImageError, decode_compressed

def peak():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))

data = open(sys.argv[1], "rb").read()
before = peak()
try:
    decode_compressed(data, max_pixels=int(sys.argv[2]))
    outcome = "decoded"
except ImageError as exc:
    outcome = exc.reason
print(outcome, peak() - before)
"""


def _peak_rss_growth(path, max_pixels: int) -> tuple[str, int]:
    """(outcome, peak RSS growth in bytes) of one decode_compressed call in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE_DECODE, str(path), str(max_pixels)],
        capture_output=True,
        text=True,
        check=True,
    )
    outcome, growth = done.stdout.split()
    return outcome, int(growth)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS is read from Linux's /proc")
def test_oversize_png_is_refused_before_decoding(tmp_path):
    """Issue 14: a 182 KiB PNG declaring 8000x8000 was decoded in full (+366 MiB) before the check."""
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_bomb(8000, 8000))
    assert path.stat().st_size < 200 * 1024
    outcome, growth = _peak_rss_growth(path, 4096 * 4096)
    assert outcome == "too_large"
    assert growth < 20 << 20, f"peak RSS grew by {growth / 2**20:.1f} MiB"
    # The same file where the limit allows it: decoding really costs the 192 MB the check saves.
    outcome, growth = _peak_rss_growth(path, 8000 * 8000)
    assert outcome == "decoded"
    assert growth > 150 << 20


def test_header_size_is_refused_with_its_numbers():
    bomb = _png_bomb(300, 200)
    with pytest.raises(ImageError, match=r"300x200.*before decoding") as err:
        decode_compressed(bomb, max_pixels=300 * 200 - 1)
    assert err.value.reason == "too_large"
    assert decode_compressed(bomb, max_pixels=300 * 200).shape == (200, 300, 3)


@pytest.mark.parametrize(
    ("ext", "params", "shape"),
    [
        (".png", [], (37, 91, 3)),
        (".png", [cv2.IMWRITE_PNG_COMPRESSION, 0], (5, 3)),
        (".jpg", [], (37, 91, 3)),
        (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], (123, 45, 3)),
        (".jpg", [cv2.IMWRITE_JPEG_OPTIMIZE, 1], (64, 48)),
    ],
)
def test_compressed_size_reads_the_header(ext, params, shape):
    rng = np.random.default_rng(7)
    ok, encoded = cv2.imencode(ext, rng.integers(0, 256, shape, dtype=np.uint8), params)
    assert ok
    assert compressed_size(encoded.tobytes()) == (shape[1], shape[0])


def test_jpeg_header_walk_skips_app_segments_that_hold_frame_markers():
    """An EXIF thumbnail (APP1) has its own SOF: the walk must skip it by the segment length."""
    rng = np.random.default_rng(8)
    _, jpeg = cv2.imencode(".jpg", rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))
    _, thumb = cv2.imencode(".jpg", rng.integers(0, 256, (8, 9, 3), dtype=np.uint8))
    payload = b"Exif\x00\x00" + thumb.tobytes()
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    data = jpeg.tobytes()[:2] + app1 + jpeg.tobytes()[2:]
    assert compressed_size(data) == (60, 40)
    assert decode_compressed(data).shape == (40, 60, 3)


def test_headers_that_cannot_be_read_are_refused():
    rng = np.random.default_rng(9)
    _, png = cv2.imencode(".png", rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    _, bmp = cv2.imencode(".bmp", rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    for data in (png.tobytes()[:20], b"\xff\xd8\xff\xd9", bmp.tobytes(), _png_bomb(0, 5)):
        with pytest.raises(ImageError, match="cannot decode") as err:
            decode_compressed(data)
        assert err.value.reason == "corrupt_compressed"
