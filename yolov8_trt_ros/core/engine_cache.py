"""Keyed, verified cache files for TensorRT engines (and the INT8 calibration cache).

A TensorRT engine is only valid for the exact ONNX, precision, calibration, batch profile,
TensorRT version and GPU it was built for, and building one takes minutes on a Jetson. So
each engine is stored with the key it was built for, and a file whose key differs, or whose
bytes do not hash to what its header says (a truncated copy, a flipped bit), is reported and
rebuilt, never handed to the deserializer: TensorRT may crash rather than fail on a damaged
plan.

File layout (little endian)::

    magic (8 bytes) | header length (u32) | header (UTF-8 JSON) | payload

The header holds ``{"format": 1, "key": {...}, "payload_sha256": ..., "payload_size": ...}``.
Writes go to a temporary file in the same directory, are flushed to disk and renamed over
the target, so a crash mid-write leaves either the old file or none, never a partial one.
Nothing here needs TensorRT: the payload is opaque bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)

ENGINE_MAGIC = b"Y8TRTENG"
FORMAT_VERSION = 1
_LEN = struct.Struct("<I")
_MAX_HEADER = 1 << 20  # a header is a few hundred bytes; more means the length field is garbage


class CacheError(Exception):
    """A cache file cannot be used; the message says why (for the log)."""


class CacheMismatchError(CacheError):
    """The file is intact but was made for a different key (model, TensorRT, GPU, ...)."""


class CacheCorruptError(CacheError):
    """The file is damaged: bad magic, unreadable header, wrong size or checksum."""


def _canonical(key: Mapping[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


def write_keyed_file(path: str | Path, magic: bytes, key: Mapping[str, Any], payload: bytes) -> Path:
    """Atomically write ``payload`` bound to ``key`` under an 8-byte ``magic``."""
    if len(magic) != 8:
        raise ValueError("magic must be 8 bytes")
    header = json.dumps(
        {
            "format": FORMAT_VERSION,
            "key": json.loads(_canonical(key)),
            "payload_sha256": hashlib.sha256(payload).hexdigest(),
            "payload_size": len(payload),
        },
        sort_keys=True,
    ).encode()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(magic + _LEN.pack(len(header)) + header)
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_keyed_header(path: str | Path, magic: bytes) -> tuple[dict[str, Any], int]:
    """The header of a keyed file and the offset of its payload; :class:`CacheCorruptError` if unreadable."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(len(magic) + _LEN.size)
        if len(head) < len(magic) + _LEN.size or head[: len(magic)] != magic:
            raise CacheCorruptError(f"{path}: not a {magic.decode(errors='replace')} file (bad magic)")
        (size,) = _LEN.unpack(head[len(magic) :])
        if size > _MAX_HEADER:
            raise CacheCorruptError(f"{path}: header length {size} is implausible")
        raw = fh.read(size)
    try:
        header = json.loads(raw.decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise CacheCorruptError(f"{path}: header is not JSON ({exc})") from exc
    if not isinstance(header, dict) or not {"format", "key", "payload_sha256", "payload_size"} <= set(header):
        raise CacheCorruptError(f"{path}: header lacks required fields")
    return header, len(magic) + _LEN.size + size


def read_keyed_file(path: str | Path, magic: bytes, key: Mapping[str, Any]) -> bytes:
    """The payload of ``path`` if it was written for exactly ``key`` and is intact.

    Raises :class:`FileNotFoundError` if absent, :class:`CacheMismatchError` if made for
    another key (the message lists the differing fields), :class:`CacheCorruptError` if
    damaged.
    """
    path = Path(path)
    header, offset = read_keyed_header(path, magic)
    if header["format"] != FORMAT_VERSION:
        raise CacheMismatchError(f"{path}: file format {header['format']}, expected {FORMAT_VERSION}")
    expected = json.loads(_canonical(key))
    if header["key"] != expected:
        stored = header["key"] if isinstance(header["key"], dict) else {}
        diff = sorted(k for k in set(stored) | set(expected) if stored.get(k) != expected.get(k))
        details = ", ".join(f"{k}: {stored.get(k)!r} != {expected.get(k)!r}" for k in diff[:4])
        raise CacheMismatchError(f"{path}: made for another configuration ({details})")
    with open(path, "rb") as fh:
        fh.seek(offset)
        payload = fh.read()
    if len(payload) != header["payload_size"]:
        raise CacheCorruptError(
            f"{path}: payload is {len(payload)} bytes, header says {header['payload_size']}"
        )
    if hashlib.sha256(payload).hexdigest() != header["payload_sha256"]:
        raise CacheCorruptError(f"{path}: payload checksum mismatch")
    return payload


@dataclass(frozen=True)
class EngineKey:
    """Everything a built TensorRT engine depends on."""

    onnx_sha256: str
    precision: str  # int8 | fp16 | fp32 (what was asked for; see ``detail`` for fallbacks)
    calibration_sha256: str  # "" unless implicit INT8
    min_batch: int
    opt_batch: int
    max_batch: int
    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "8.7" for Orin
    #: Build options baked into the engine: in-engine NMS settings, workspace, DLA core, ...
    options: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["options"] = dict(self.options)
        return data

    def digest(self) -> str:
        """SHA-256 of the canonical key; names the cache file."""
        return hashlib.sha256(_canonical(self.as_dict()).encode()).hexdigest()


class EngineCache:
    """A directory of engines, one file per :class:`EngineKey`."""

    def __init__(self, directory: str | Path, magic: bytes = ENGINE_MAGIC) -> None:
        self.directory = Path(directory)
        self.magic = magic

    def path_for(self, key: EngineKey, stem: str = "engine") -> Path:
        """``<dir>/<stem>-<precision>-b<max>-<digest16>.engine``: readable, unique per key."""
        return self.directory / f"{stem}-{key.precision}-b{key.max_batch}-{key.digest()[:16]}.engine"

    def load(self, key: EngineKey, stem: str = "engine") -> bytes | None:
        """The cached engine for ``key``, or ``None`` (absent, mismatched or corrupt: logged)."""
        path = self.path_for(key, stem)
        try:
            return read_keyed_file(path, self.magic, key.as_dict())
        except FileNotFoundError:
            LOG.info("no cached engine at %s; building", path)
        except CacheError as exc:
            LOG.warning("cached engine rejected, rebuilding: %s", exc)
        return None

    def store(self, key: EngineKey, payload: bytes, stem: str = "engine") -> Path:
        path = write_keyed_file(self.path_for(key, stem), self.magic, key.as_dict(), payload)
        LOG.info("engine cached at %s (%.1f MB)", path, len(payload) / 1e6)
        return path

    def get_or_build(
        self, key: EngineKey, build: Callable[[], bytes], stem: str = "engine"
    ) -> tuple[bytes, bool]:
        """``(payload, built)``: the cached engine, or a fresh ``build()`` that is then stored."""
        cached = self.load(key, stem)
        if cached is not None:
            return cached, False
        payload = build()
        self.store(key, payload, stem)
        return payload, True
