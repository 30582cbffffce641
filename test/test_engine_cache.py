"""Engine cache files: write, reuse, and rejection of mismatched or damaged files (real files)."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import pytest

from yolov8_trt_ros.core.engine_cache import (
    ENGINE_MAGIC,
    CacheCorruptError,
    CacheMismatchError,
    EngineCache,
    EngineKey,
    read_keyed_file,
    write_keyed_file,
)

KEY = EngineKey(
    onnx_sha256="ab" * 32,
    precision="fp16",
    calibration_sha256="",
    min_batch=1,
    opt_batch=1,
    max_batch=8,
    tensorrt_version="10.3.0",
    gpu_name="Orin",
    compute_capability="8.7",
    options={"nms": {"iou": 0.45, "conf": 0.25}, "workspace_mb": 1024},
)


@pytest.fixture
def payload() -> bytes:
    return os.urandom(200_000)


def test_round_trip_and_reuse(tmp_path: Path, payload: bytes) -> None:
    cache = EngineCache(tmp_path)
    builds: list[int] = []

    def build() -> bytes:
        builds.append(1)
        return payload

    first, built = cache.get_or_build(KEY, build)
    assert built and first == payload
    second, built = cache.get_or_build(KEY, build)
    assert not built and second == payload and len(builds) == 1
    assert [p.name for p in tmp_path.iterdir()] == [cache.path_for(KEY).name]  # no temporary left


@pytest.mark.parametrize(
    "change",
    [
        {"onnx_sha256": "cd" * 32},
        {"precision": "int8", "calibration_sha256": "ef" * 32},
        {"max_batch": 4},
        {"tensorrt_version": "10.4.0"},
        {"gpu_name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"},
        {"options": {"nms": {"iou": 0.5, "conf": 0.25}, "workspace_mb": 1024}},
    ],
)
def test_every_key_field_separates_engines(tmp_path: Path, payload: bytes, change: dict) -> None:
    other = dataclasses.replace(KEY, **change)
    assert other.digest() != KEY.digest()
    cache = EngineCache(tmp_path)
    cache.store(KEY, payload)
    assert cache.load(other) is None  # different file name: not found, built anew
    # The same file renamed to the other key's name is caught by its header.
    cache.path_for(KEY).rename(cache.path_for(other))
    with pytest.raises(CacheMismatchError, match=next(iter(change))):
        read_keyed_file(cache.path_for(other), ENGINE_MAGIC, other.as_dict())


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        data = data[: len(data) - 1000]
    elif how == "flip_payload":
        data[-5] ^= 0x40
    elif how == "flip_header":
        data[20] ^= 0xFF
    elif how == "bad_magic":
        data[0:8] = b"NOTANENG"
    elif how == "header_length":
        data[8:12] = (2**31).to_bytes(4, "little")
    elif how == "appended":
        data += b"\0"
    elif how == "empty":
        data = bytearray()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "how", ["truncate", "flip_payload", "flip_header", "bad_magic", "header_length", "appended", "empty"]
)
def test_damaged_file_is_rejected_and_rebuilt(tmp_path: Path, payload: bytes, how: str, caplog) -> None:
    cache = EngineCache(tmp_path)
    path = cache.store(KEY, payload)
    _damage(path, how)
    with pytest.raises((CacheCorruptError, CacheMismatchError)):
        read_keyed_file(path, ENGINE_MAGIC, KEY.as_dict())
    rebuilt = os.urandom(1000)
    with caplog.at_level(logging.WARNING):
        out, built = cache.get_or_build(KEY, lambda: rebuilt)
    assert built and out == rebuilt
    assert "rejected" in caplog.text
    assert read_keyed_file(path, ENGINE_MAGIC, KEY.as_dict()) == rebuilt  # the bad file was replaced


def test_failed_write_leaves_the_old_file(
    tmp_path: Path, payload: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "x.engine"
    write_keyed_file(path, ENGINE_MAGIC, {"k": 1}, payload)

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_keyed_file(path, ENGINE_MAGIC, {"k": 2}, b"new")
    monkeypatch.undo()
    assert read_keyed_file(path, ENGINE_MAGIC, {"k": 1}) == payload
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.engine"]


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_keyed_file(tmp_path / "none.engine", ENGINE_MAGIC, {})
