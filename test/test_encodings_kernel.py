"""The fused kernel's source, built for the host, against the CPU (OpenCV) path, per encoding.

The GPU tests (test_gpu_preprocess.py, ``gpu``) run the kernel itself on a GPU. This module
compiles the same ``letterbox.cu`` with the host C++ compiler (CUDA built-ins replaced by their
host equivalents: one "thread" per output element, ``__float2int_rn`` as ``nearbyintf``) and
runs it over the same staging buffer ``CudaPreprocessor`` builds, so the per-encoding pixel
fetch (YUV, Bayer, 16-bit) is checked against OpenCV on every machine with a compiler, not
only where a GPU is. It skips without a C++ compiler.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import numpy as np
import pytest
from _encodings import ALL_ENCODINGS, opencv_bgr, random_frame, split

from yolov8_trt_ros.core.config import PreprocessConfig
from yolov8_trt_ros.core.image_input import check_image
from yolov8_trt_ros.core.preprocess import CpuPreprocessor
from yolov8_trt_ros.core.preprocess_cuda import KERNEL_SOURCE, plan_batch, staged_frame

TOL = 1.0 / 255.0 + 1e-6

_HARNESS = r"""
#include <math.h>
#include <stddef.h>
#include <algorithm>
#define LETTERBOX_HOST_EMULATION 1
#define __device__
#define __forceinline__ inline
#define __global__
struct Dim3 { int x, y, z; };
static Dim3 blockIdx, blockDim = {1, 1, 1}, threadIdx = {0, 0, 0};
static inline int __float2int_rn(float f) { return (int)nearbyintf(f); }
using std::min;
#include "letterbox.cu"

extern "C" void emulate_f32(const unsigned char* src, const ImageParams* params, float* dst, int batch,
                            int dst_w, int dst_h, int pad_value) {
    for (int n = 0; n < batch; ++n)
        for (int y = 0; y < dst_h; ++y)
            for (int x = 0; x < dst_w; ++x) {
                blockIdx = {x, y, n};
                letterbox_f32(src, params, dst, dst_w, dst_h, pad_value);
            }
}
"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    cxx = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler to build letterbox.cu for the host")
    tmp = tmp_path_factory.mktemp("letterbox_host")
    (tmp / "harness.cpp").write_text(_HARNESS)
    lib = tmp / "letterbox_host.so"
    cmd = [cxx, "-std=c++17", "-O2", "-ffp-contract=off", "-fPIC", "-shared"]
    cmd += ["-I", str(KERNEL_SOURCE.parent), str(tmp / "harness.cpp"), "-o", str(lib)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    so = ctypes.CDLL(str(lib))
    so.emulate_f32.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int] * 4
    return so


def emulate(kernel, frames, encodings, cfg: PreprocessConfig):
    """What CudaPreprocessor computes, with the kernel run on the host (float32 output)."""
    checked = [check_image(f, e, cfg.max_image_pixels) for f, e in zip(frames, encodings, strict=True)]
    params, letterboxes, nbytes = plan_batch(checked, encodings, cfg.input_width, cfg.input_height)
    host = np.zeros(nbytes, np.uint8)
    host[: params.nbytes] = params.view(np.uint8)
    for record, img in zip(params, checked, strict=True):
        np.copyto(staged_frame(host, record, img), img)
    out = np.full((len(frames), 3, cfg.input_height, cfg.input_width), np.nan, np.float32)
    kernel.emulate_f32(
        host.ctypes.data,
        host.ctypes.data,
        out.ctypes.data,
        len(frames),
        *(cfg.input_width, cfg.input_height, cfg.pad_value),
    )
    return out, letterboxes


@pytest.mark.parametrize("encoding", ALL_ENCODINGS)
def test_host_built_kernel_matches_opencv_for_every_encoding(kernel, encoding):
    rng = np.random.default_rng(abs(hash(encoding)) % 2**32)
    cfg = PreprocessConfig(input_width=320, input_height=256)
    # Odd, tiny, up- and down-scaled sizes: borders, chroma pairs and Bayer edges all show.
    sizes = [(3, 3), (5, 7), (37, 53), (120, 90), (241, 383), (480, 640)]
    frames = [random_frame(rng, encoding, h, w) for h, w in sizes]
    name = split(encoding)[0]
    out, lbs = emulate(kernel, frames, [name] * len(frames), cfg)
    assert np.isfinite(out).all(), "an output element was not written"
    differing = []
    for i, frame in enumerate(frames):
        ref, ref_lbs = CpuPreprocessor(cfg)([frame], [name])
        assert lbs[i] == ref_lbs[0]
        via_bgr, _ = CpuPreprocessor(cfg)([opencv_bgr(frame, encoding)], ["bgr8"])
        np.testing.assert_array_equal(ref, via_bgr)  # the CPU path is OpenCV's conversion
        diff = np.abs(out[i] - ref[0])
        assert diff.max() <= TOL, f"{frame.shape}: max diff {diff.max() * 255:.2f}/255"
        differing.append(float((diff > 0).mean()))
    assert np.mean(differing) < 0.01, differing  # OpenCV's fixed point: nearly all exact


def test_host_built_kernel_mixed_batch_with_padded_rows(kernel):
    """Every encoding in one batch, from padded message buffers, as the node hands them over."""
    from _encodings import message_bytes

    from yolov8_trt_ros.core.image_input import image_from_buffer

    rng = np.random.default_rng(11)
    cfg = PreprocessConfig(input_width=256, input_height=192)
    views, names = [], []
    for k, encoding in enumerate(ALL_ENCODINGS):
        frame = random_frame(rng, encoding, 60 + 2 * k, 90 - 2 * k)
        data, step = message_bytes(frame, pad=1 + k % 5)
        name, big = split(encoding)
        h = frame.shape[0] * 2 // 3 if name in ("nv12", "nv21") else frame.shape[0]
        views.append(image_from_buffer(data, frame.shape[1], h, step, name, is_bigendian=big))
        np.testing.assert_array_equal(views[-1], frame)
        names.append(name)
    out, _ = emulate(kernel, views, names, cfg)
    for i, (view, name) in enumerate(zip(views, names, strict=True)):
        ref, _ = CpuPreprocessor(cfg)([view], [name])
        assert np.abs(out[i] - ref[0]).max() <= TOL, name
