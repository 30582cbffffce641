"""The bundle archive: an uncompressed tar of ``manifest.json``, ``manifest.sig`` and the files.

Tar because every robot and every CI has it and it streams; uncompressed because ONNX weights
do not compress and a flipped bit in a compressed stream would fail far from its cause. The
reader trusts nothing in the tar but the signed manifest: it extracts only the names the
manifest lists, as regular files, hashing while it writes, so a bundle with an extra, missing,
altered or truncated file fails before anything is installed.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from yolov8_trt_ros.deploy import signing
from yolov8_trt_ros.deploy.manifest import (
    CALIBRATION_NAME,
    CLASSES_NAME,
    INT8_MODEL_NAME,
    MANIFEST_NAME,
    MODEL_NAME,
    SIGNATURE_NAME,
    BundleError,
    Manifest,
    SmokeSpec,
    sha256_file,
    sha256_stream,
)


def create_bundle(
    out: Path,
    *,
    name: str,
    version: str,
    model: Path,
    classes: list[str],
    reference: Mapping[str, Path],
    expected_json: bytes,
    private_key: Ed25519PrivateKey,
    int8_model: Path | None = None,
    calibration_cache: Path | None = None,
    smoke: SmokeSpec | None = None,
    tools: dict[str, str] | None = None,
) -> Manifest:
    """Write a signed bundle to ``out`` (written aside, then renamed into place).

    ``reference`` maps names inside the bundle (``reference/000.png``) to files; the names are
    the ones ``expected_json`` refers to.
    """
    sources: dict[str, Path | bytes] = {MODEL_NAME: model, CLASSES_NAME: ("\n".join(classes) + "\n").encode()}
    if int8_model is not None:
        sources[INT8_MODEL_NAME] = int8_model
    if calibration_cache is not None:
        sources[CALIBRATION_NAME] = calibration_cache
    sources.update(reference)
    spec = smoke or SmokeSpec()
    sources[spec.expected] = expected_json
    files = {
        arc: (sha256_file(src) if isinstance(src, Path) else sha256_stream(io.BytesIO(src)))
        for arc, src in sources.items()
    }
    manifest = Manifest(
        name=name,
        version=version,
        files=files,
        classes=list(classes),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        has_int8=int8_model is not None,
        has_calibration=calibration_cache is not None,
        smoke=spec,
        tools=dict(tools or {}),
        key_id=signing.key_id(private_key.public_key()),
    )
    manifest.check()
    raw = manifest.to_bytes()
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, MANIFEST_NAME, raw)
            _add_bytes(tar, SIGNATURE_NAME, signing.sign(private_key, raw))
            for arc, src in sources.items():
                if isinstance(src, Path):
                    info = tar.gettarinfo(str(src), arcname=arc)
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    info.mode = 0o644
                    with open(src, "rb") as f:
                        tar.addfile(info, f)
                else:
                    _add_bytes(tar, arc, src)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return manifest


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _open(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:")
    except (OSError, tarfile.TarError) as exc:
        raise BundleError(f"{path} is not a readable bundle (truncated or not a tar): {exc}") from exc


def _members(tar: tarfile.TarFile, path: Path) -> dict[str, tarfile.TarInfo]:
    try:
        members = tar.getmembers()  # reads the whole archive: a truncated one fails here
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise BundleError(f"{path} is truncated or corrupt: {exc}") from exc
    by_name: dict[str, tarfile.TarInfo] = {}
    for m in members:
        if m.name in by_name:
            raise BundleError(f"{path}: {m.name} appears twice")
        by_name[m.name] = m
    return by_name


def read_manifest(path: Path, public_key: Ed25519PublicKey) -> Manifest:
    """The bundle's manifest after its signature is checked (files not yet hashed)."""
    with _open(path) as tar:
        members = _members(tar, path)
        return _verified_manifest(tar, members, path, public_key)


def _read_member(
    tar: tarfile.TarFile, members: Mapping[str, tarfile.TarInfo], name: str, path: Path
) -> bytes:
    info = members.get(name)
    f = tar.extractfile(info) if info is not None and info.isfile() else None
    if f is None:
        raise BundleError(f"{path} has no {name}")
    try:
        data = f.read()
    except (OSError, tarfile.TarError) as exc:
        raise BundleError(f"{path}: {name} is truncated: {exc}") from exc
    if len(data) != info.size:  # type: ignore[union-attr]
        raise BundleError(f"{path}: {name} is truncated")
    return data


def _verified_manifest(
    tar: tarfile.TarFile, members: Mapping[str, tarfile.TarInfo], path: Path, public_key: Ed25519PublicKey
) -> Manifest:
    raw = _read_member(tar, members, MANIFEST_NAME, path)
    sig = _read_member(tar, members, SIGNATURE_NAME, path)
    signing.verify(public_key, raw, sig)  # before parsing anything the bundle says
    manifest = Manifest.from_bytes(raw)
    extra = sorted(set(members) - set(manifest.files) - {MANIFEST_NAME, SIGNATURE_NAME})
    if extra:
        raise BundleError(f"{path} holds files the manifest does not list: {', '.join(extra[:5])}")
    return manifest


def extract_verified(
    path: Path, public_key: Ed25519PublicKey, dest: Path, on_file: Callable[[str], None] | None = None
) -> Manifest:
    """Check the signature, then write every listed file under ``dest``, hashing as it goes.

    Each file is fsynced; ``dest`` must be a fresh directory on the store's filesystem. Any
    mismatch raises :class:`BundleError` naming the file; the caller removes ``dest``.
    """
    with _open(path) as tar:
        members = _members(tar, path)
        manifest = _verified_manifest(tar, members, path, public_key)
        for name, entry in sorted(manifest.files.items()):
            info = members.get(name)
            if info is None or not info.isfile():
                raise BundleError(f"{path}: {name} is missing (or not a regular file)")
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(info)
            assert src is not None
            try:
                with open(target, "wb") as out:
                    got = sha256_stream(src, out)
                    out.flush()
                    os.fsync(out.fileno())
            except (OSError, tarfile.TarError) as exc:
                raise BundleError(f"{path}: {name} is truncated: {exc}") from exc
            if got.size != entry.size:
                raise BundleError(
                    f"{path}: {name} has {got.size} bytes, the manifest says {entry.size} (truncated?)"
                )
            if got.sha256 != entry.sha256:
                raise BundleError(f"{path}: {name} sha256 {got.sha256[:16]}… does not match the manifest")
            if on_file is not None:
                on_file(name)
        for name, data in ((MANIFEST_NAME, MANIFEST_NAME), (SIGNATURE_NAME, SIGNATURE_NAME)):
            (dest / name).write_bytes(_read_member(tar, members, data, path))
    return manifest
