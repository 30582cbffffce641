"""Bundles for the deploy tests (not a test module): keys, reference images, good and bad bundles.

Everything is made in the test's tmp dirs: keys are generated per session, never stored.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper

from yolov8_trt_ros.core.config import EngineConfig
from yolov8_trt_ros.datasets.synthetic import render_detection_image
from yolov8_trt_ros.deploy import bundle, signing, smoke
from yolov8_trt_ros.deploy.gate import record_expected

CLASSES = ["circle", "square", "triangle", "star", "cross", "ring", "hexagon", "diamond", "ellipse", "arrow"]
ENGINE = EngineConfig(backend="onnxruntime", precision="fp32", num_threads=1)


class Kit:
    """Keys, reference images and their recorded expectations for one test module."""

    def __init__(self, root: Path, model: Path) -> None:
        self.root = root
        self.model = model
        self.private, self.public = root / "keys" / "signing.pem", root / "keys" / "signing.pub"
        signing.generate_keypair(self.private, self.public)
        self.reference: dict[str, Path] = {}
        for i in range(2):
            image, _, _ = render_detection_image(seed=11, split_id=7, index=i)
            path = root / f"ref{i}.jpg"
            cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
            self.reference[f"reference/{i:03d}.jpg"] = path
        self.expected = record_expected(model, list(self.reference.items()), ENGINE, 0.25)

    def make(
        self,
        name: str,
        version: str,
        *,
        model: Path | None = None,
        key: Path | None = None,
        expected: bytes | None = None,
        int8_model: Path | None = None,
    ) -> Path:
        out = self.root / f"{name}.tar"
        bundle.create_bundle(
            out,
            name="synth",
            version=version,
            model=model or self.model,
            classes=CLASSES,
            reference=self.reference,
            expected_json=expected if expected is not None else self.expected,
            private_key=signing.load_private_key(key or self.private),
            int8_model=int8_model,
        )
        return out

    def other_key(self) -> Path:
        private = self.root / "keys" / "other.pem"
        if not private.exists():
            signing.generate_keypair(private, self.root / "keys" / "other.pub")
        return private

    def wrong_classes_expected(self) -> bytes:
        """The recorded expectations with every class id shifted: a model that 'sees' wrong."""
        items = [
            (e.file, smoke.Detections(d.boxes, d.scores, (d.class_ids + 1) % 10))
            for e in smoke.parse_expected(self.expected)
            for d in [e.detections]
        ]
        return smoke.to_json(items).encode()


def rewrite_member(src: Path, dst: Path, name: str, data: bytes) -> Path:
    """A copy of the tar ``src`` with member ``name``'s content replaced (manifest and signature kept)."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as tout:
        for member in tin.getmembers():
            content = tin.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == name:
                content = data
                member.size = len(data)
            tout.addfile(member, io.BytesIO(content))
    return dst


def flipped_model_bundle(src: Path, dst: Path, model: Path) -> Path:
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one bit pattern changed: only the hash can tell
    return rewrite_member(src, dst, "model.onnx", bytes(data))


def truncated(src: Path, dst: Path) -> Path:
    raw = src.read_bytes()
    dst.write_bytes(raw[: len(raw) * 2 // 3])
    return dst


def foreign_onnx(path: Path) -> Path:
    """A valid ONNX with the detector's input and output names whose output is not a YOLO head.

    It loads (names, declared shapes and the 10-class head size look right), then the real
    output is the input image itself: decoding fails at warm-up.
    """
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 640, 640])
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 14, 8400])
    identity = helper.make_node("Identity", ["images"], ["output0"])
    graph = helper.make_graph([identity], "foreign", [images], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    names = {i: n for i, n in enumerate(CLASSES)}
    model.metadata_props.add(key="names", value=repr(names))
    onnx.save(model, path)
    return path


def garbage_onnx(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return path


def bad_bundles(kit: Kit, tmp: Path) -> dict[str, tuple[Path, str, str]]:
    """name → (bundle, failing step, words the error must contain)."""
    v3 = kit.make("v3", "3.0.0")
    return {
        "bad signature": (kit.make("other_key", "3.0.0", key=kit.other_key()), "verify", "bad signature"),
        "altered manifest": (
            rewrite_member(v3, tmp / "altered.tar", "manifest.json", v3_manifest_altered(v3)),
            "verify",
            "bad signature",
        ),
        "wrong hash": (
            flipped_model_bundle(v3, tmp / "flipped.tar", kit.model),
            "stage",
            "model.onnx sha256",
        ),
        "truncated": (truncated(v3, tmp / "truncated.tar"), "verify", "truncated"),
        "corrupt model": (
            kit.make("garbage", "3.0.0", model=garbage_onnx(tmp / "garbage.onnx")),
            "gate",
            "load failed",
        ),
        "warm-up failure": (
            kit.make("foreign", "3.0.0", model=foreign_onnx(tmp / "foreign.onnx")),
            "gate",
            "warm-up failed",
        ),
        "smoke test failure": (
            kit.make("wrong", "3.0.0", expected=kit.wrong_classes_expected()),
            "gate",
            "smoke test failed: recall 0.00",
        ),
    }


def v3_manifest_altered(v3: Path) -> bytes:
    with tarfile.open(v3) as tar:
        raw = tar.extractfile("manifest.json").read()  # type: ignore[union-attr]
    return raw.replace(b'"3.0.0"', b'"3.0.1"')
