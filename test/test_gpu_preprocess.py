"""The fused CUDA letterbox kernel against the CPU (OpenCV) reference, on fresh random frames."""

from __future__ import annotations

import numpy as np
import pytest
from _encodings import ALL_ENCODINGS, canon, message_bytes, random_frame, split

from yolov8_trt_ros.core.config import PreprocessConfig
from yolov8_trt_ros.core.image_input import ImageError
from yolov8_trt_ros.core.preprocess import CpuPreprocessor

pytestmark = pytest.mark.gpu

TOL32 = 1.0 / 255.0 + 1e-6
TOL16 = 1.0 / 255.0 + 2.0**-11  # plus half an fp16 ulp at 1.0


@pytest.fixture(autouse=True)
def _kernel_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("YOLOV8_TRT_ROS_KERNEL_CACHE", str(tmp_path_factory.getbasetemp() / "kernels"))


def _random_frame(rng: np.random.Generator, max_side: int = 1999) -> tuple[np.ndarray, str]:
    """A frame of random size in a random encoding (aliases and big-endian 16-bit included)."""
    encoding = str(rng.choice(ALL_ENCODINGS))
    h = int(rng.integers(1, max_side + 1))
    w = int(rng.integers(1, max_side + 1))
    return random_frame(rng, encoding, h, w), split(encoding)[0]


def _compare(gpu: np.ndarray, cpu: np.ndarray, tol: float) -> float:
    assert gpu.shape == cpu.shape and gpu.dtype == cpu.dtype
    assert np.isfinite(gpu.astype(np.float32)).all(), "an output element was not written"
    diff = np.abs(gpu.astype(np.float32) - cpu.astype(np.float32))
    assert diff.max() <= tol, f"max diff {diff.max() * 255:.3f}/255"
    return float((diff > 0).mean())


def _poison(tensor) -> None:
    """Fill the preprocessor's output buffer with NaN through a zero-copy torch view."""
    import torch

    view = torch.as_tensor(tensor, device="cuda")
    assert view.data_ptr() == tensor.ptr
    view.fill_(float("nan"))


@pytest.mark.parametrize("fp16", [False, True])
def test_random_single_images_match_cpu(fp16):
    from yolov8_trt_ros.core.preprocess_cuda import CudaPreprocessor

    rng = np.random.default_rng(1000 + fp16)
    cfg = PreprocessConfig(fp16=fp16)
    gpu, cpu = CudaPreprocessor(cfg), CpuPreprocessor(cfg)
    differing = []
    try:
        for _ in range(60):
            frame, enc = _random_frame(rng)
            out, lbs = gpu([frame], [enc])
            _poison(out)
            out, lbs = gpu([frame], [enc])
            ref, ref_lbs = cpu([frame], [enc])
            assert lbs == ref_lbs
            differing.append(_compare(out.copy_to_host(), ref, TOL16 if fp16 else TOL32))
    finally:
        gpu.close()
    print(f"fp16={fp16}: elements differing from OpenCV by one grey level: mean {np.mean(differing):.2e}")
    assert np.mean(differing) < 0.01  # the fixed-point arithmetic is OpenCV's: nearly all exact


@pytest.mark.parametrize("fp16", [False, True])
def test_random_batches_match_cpu(fp16):
    import torch

    from yolov8_trt_ros.core.preprocess_cuda import CudaPreprocessor

    rng = np.random.default_rng(2000 + fp16)
    cfg = PreprocessConfig(input_width=640, input_height=384, fp16=fp16)
    stream = torch.cuda.Stream()
    gpu, cpu = CudaPreprocessor(cfg, stream=stream), CpuPreprocessor(cfg)
    try:
        for batch in (8, 3, 8, 1):
            frames = [_random_frame(rng, 1300) for _ in range(batch)]
            out, lbs = gpu([f for f, _ in frames], [e for _, e in frames])
            assert out.shape == (batch, 3, 384, 640)
            with torch.cuda.stream(stream):  # consumer on the producer's stream, as the engine is
                dev = torch.as_tensor(out, device="cuda").clone()
            stream.synchronize()
            host = dev.cpu().numpy()
            for i, (frame, enc) in enumerate(frames):
                ref, ref_lbs = cpu([frame], [enc])
                assert lbs[i] == ref_lbs[0]
                _compare(host[i : i + 1], ref, TOL16 if fp16 else TOL32)
    finally:
        gpu.close()


def test_padded_rows_and_all_encodings_in_one_batch():
    from yolov8_trt_ros.core.image_input import image_from_buffer
    from yolov8_trt_ros.core.preprocess_cuda import CudaPreprocessor

    rng = np.random.default_rng(3)
    frames, encs = [], []
    for k, encoding in enumerate(ALL_ENCODINGS):
        frame = random_frame(rng, encoding, 301 - k % 2, 402 + k % 3)
        data, step = message_bytes(frame, pad=13)  # padded rows, as some camera drivers send
        name, big = split(encoding)
        h = frame.shape[0] * 2 // 3 if canon(encoding) in ("nv12", "nv21") else frame.shape[0]
        frames.append(image_from_buffer(data, frame.shape[1], h, step, name, is_bigendian=big))
        encs.append(name)
    gpu = CudaPreprocessor(PreprocessConfig())
    try:
        out, _ = gpu(frames, encs)
        host = out.copy_to_host()
    finally:
        gpu.close()
    for i, (frame, enc) in enumerate(zip(frames, encs, strict=True)):
        ref, _ = CpuPreprocessor(PreprocessConfig())([frame], [enc])
        _compare(host[i : i + 1], ref, TOL32)


def test_no_allocation_after_warm_up():
    from cuda.bindings import driver as cu

    from yolov8_trt_ros.core.preprocess_cuda import CudaPreprocessor

    rng = np.random.default_rng(4)
    pool = [_random_frame(rng, 1280) for _ in range(12)]
    gpu = CudaPreprocessor(PreprocessConfig())
    try:
        largest = [np.zeros((1280, 1280, 4), np.uint8)] * 4
        out, _ = gpu(largest, ["bgra8"] * 4)  # warm-up: the biggest frames and batch
        out.copy_to_host()
        allocations = gpu.allocations
        free_before, _ = cu.cuMemGetInfo()[1:]
        for _ in range(1000):
            picks = rng.integers(0, len(pool), int(rng.integers(1, 5)))
            out, _ = gpu([pool[i][0] for i in picks], [pool[i][1] for i in picks])
        out.copy_to_host()
        free_after, _ = cu.cuMemGetInfo()[1:]
        assert gpu.allocations == allocations, "pinned/device buffers were allocated after warm-up"
        assert free_before - free_after < 2 << 20, f"device memory fell by {free_before - free_after} bytes"
    finally:
        gpu.close()


def test_bad_frame_raises_image_error_and_the_preprocessor_keeps_working():
    from yolov8_trt_ros.core.preprocess_cuda import CudaPreprocessor

    gpu = CudaPreprocessor(PreprocessConfig())
    try:
        with pytest.raises(ImageError):
            gpu([np.zeros((10, 10, 3), np.uint8)], ["32FC1"])
        with pytest.raises(ImageError):
            gpu([np.zeros((15, 9, 1), np.uint8)], ["nv12"])  # odd width
        with pytest.raises(ImageError):
            gpu([np.zeros((10, 9, 2), np.uint8)], ["yuv422_yuy2"])  # odd width
        frame = np.full((48, 64, 3), 200, np.uint8)
        out, _ = gpu([frame], ["bgr8"])
        ref, _ = CpuPreprocessor(PreprocessConfig())([frame], ["bgr8"])
        _compare(out.copy_to_host(), ref, TOL32)
    finally:
        gpu.close()
        gpu.close()  # idempotent


def test_kernel_binary_is_cached_on_disk(tmp_path, monkeypatch):
    from yolov8_trt_ros.core.preprocess_cuda import CudaPreprocessor

    monkeypatch.setenv("YOLOV8_TRT_ROS_KERNEL_CACHE", str(tmp_path))
    CudaPreprocessor(PreprocessConfig()).close()
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].stat().st_size > 0
    stamp = files[0].stat().st_mtime_ns
    CudaPreprocessor(PreprocessConfig()).close()
    assert [f.stat().st_mtime_ns for f in tmp_path.iterdir()] == [stamp]
