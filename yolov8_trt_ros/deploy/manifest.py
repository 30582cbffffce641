"""The bundle manifest: versions, file roles and the sha256 and size of every file.

The manifest is what is signed, byte for byte as stored in the bundle (never re-serialised
before verifying), and every other file is trusted only through its entry here.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

FORMAT = 1
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
#: Fixed names inside a bundle and an installed release, so the node's ``model_path`` never
#: changes between releases (``<store>/current/model.onnx``) and the INT8 sibling rule of the
#: backends (``x.onnx`` → ``x.int8.onnx``) finds the quantised model.
MODEL_NAME = "model.onnx"
INT8_MODEL_NAME = "model.int8.onnx"
CALIBRATION_NAME = "calibration.cache"
CLASSES_NAME = "classes.txt"
EXPECTED_NAME = "reference/expected.json"
_SAFE_NAME = re.compile(r"^(?!/)(?!.*(?:^|/)\.\.?(?:/|$))[A-Za-z0-9._/-]{1,200}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


class BundleError(Exception):
    """A bundle that must not be installed; the message says which file and why."""


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int


@dataclass
class SmokeSpec:
    """How the smoke test compares the model's detections with the bundled expectations."""

    expected: str = EXPECTED_NAME
    conf_threshold: float = 0.25
    min_iou: float = 0.5
    min_recall: float = 0.9
    min_precision: float = 0.8


@dataclass
class Manifest:
    name: str
    version: str
    files: dict[str, FileEntry]
    classes: list[str]
    created: str = ""
    has_int8: bool = False
    has_calibration: bool = False
    smoke: SmokeSpec = field(default_factory=SmokeSpec)
    tools: dict[str, str] = field(default_factory=dict)  # producer's versions (package, onnx, ...)
    key_id: str = ""  # which signing key, for the error when the robot trusts another
    format: int = FORMAT

    def to_bytes(self) -> bytes:
        data = asdict(self)
        return (json.dumps(data, sort_keys=True, indent=1) + "\n").encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        try:
            data = json.loads(raw)
            if data.get("format") != FORMAT:
                raise BundleError(f"manifest format {data.get('format')!r} is not {FORMAT}")
            files = {k: FileEntry(str(v["sha256"]), int(v["size"])) for k, v in data.pop("files").items()}
            smoke = SmokeSpec(**data.pop("smoke"))
            manifest = cls(files=files, smoke=smoke, **data)
        except BundleError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BundleError(f"{MANIFEST_NAME} is malformed: {exc}") from exc
        manifest.check()
        return manifest

    def check(self) -> None:
        """Names that stay inside the release directory, the roles' files present, a usable version."""
        if not _VERSION.match(self.version):
            raise BundleError(f"version {self.version!r} must match {_VERSION.pattern}")
        for name in self.files:
            if not _SAFE_NAME.match(name) or name in (MANIFEST_NAME, SIGNATURE_NAME):
                raise BundleError(f"file name {name!r} is not allowed in a bundle")
        required = [MODEL_NAME, CLASSES_NAME, self.smoke.expected]
        required += [INT8_MODEL_NAME] if self.has_int8 else []
        required += [CALIBRATION_NAME] if self.has_calibration else []
        missing = [n for n in required if n not in self.files]
        if missing:
            raise BundleError(f"manifest lists no {', '.join(missing)}")

    @property
    def release_id(self) -> str:
        """``<version>-<first 12 hex of the model's sha256>``: unique per model, readable."""
        return f"{self.version}-{self.files[MODEL_NAME].sha256[:12]}"


def sha256_stream(stream: IO[bytes], out: IO[bytes] | None = None, chunk: int = 1 << 20) -> FileEntry:
    """Hash (and optionally copy) a stream in chunks: model files are tens of MB."""
    digest = hashlib.sha256()
    size = 0
    while block := stream.read(chunk):
        digest.update(block)
        size += len(block)
        if out is not None:
            out.write(block)
    return FileEntry(digest.hexdigest(), size)


def sha256_file(path: Path) -> FileEntry:
    with open(path, "rb") as f:
        return sha256_stream(f)


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())
