"""``python -m yolov8_trt_ros.deploy {keygen,create,verify,install,rollback,status}``.

Exit 0 on success, 1 with one ``error: ...`` line on stderr otherwise (for fleet scripts).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from yolov8_trt_ros.deploy import bundle, installer, signing
from yolov8_trt_ros.deploy.gate import GateError, NodeSettings, record_expected, settings_from_params
from yolov8_trt_ros.deploy.manifest import BundleError, SmokeSpec
from yolov8_trt_ros.deploy.store import DEFAULT_ROOT, ModelStore, StoreError, rollback

DEFAULT_PUBLIC_KEY = Path("/etc/yolov8_trt_ros/bundle_signing.pub")


def _engine_args(p: argparse.ArgumentParser, default_backend: str | None) -> None:
    g = p.add_argument_group("engine (as the node runs it; the node's parameter YAML is read first)")
    g.add_argument("--params", type=Path, help="the node's ROS parameter YAML (backend, precision, cache)")
    g.add_argument("--backend", default=default_backend, help="auto | tensorrt | cuda | onnxruntime")
    g.add_argument("--precision", help="int8 | fp16 | fp32")
    g.add_argument("--engine-cache-dir", help="where TensorRT engines are cached (the node's)")


def _settings(args: argparse.Namespace) -> NodeSettings:
    return settings_from_params(
        args.params, backend=args.backend, precision=args.precision, engine_cache_dir=args.engine_cache_dir
    )


def _classes(args: argparse.Namespace) -> list[str]:
    if args.classes:
        path = Path(args.classes)
        return path.read_text().split() if path.is_file() else args.classes.split(",")
    from yolov8_trt_ros.core.backends.model_info import read_model_info

    names = list(read_model_info(args.model).class_names)
    if not names:
        raise BundleError(f"{args.model} has no class names in its metadata: pass --classes")
    return names


def _passphrase(args: argparse.Namespace) -> bytes | None:
    """From the environment variable named by --passphrase-env (never from the command line)."""
    if not args.passphrase_env:
        return None
    value = os.environ.get(args.passphrase_env)
    if not value:
        raise ValueError(f"--passphrase-env {args.passphrase_env}: the variable is not set")
    return value.encode()


def cmd_keygen(args: argparse.Namespace) -> int:
    kid = signing.generate_keypair(args.private, args.public, _passphrase(args))
    print(f"key {kid}: private {args.private} (keep it off robots and out of git), public {args.public}")
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    reference = [(f"reference/{i:03d}{p.suffix}", p) for i, p in enumerate(args.reference)]
    spec = SmokeSpec(
        conf_threshold=args.conf_threshold,
        min_iou=args.min_iou,
        min_recall=args.min_recall,
        min_precision=args.min_precision,
    )
    if args.expected:
        expected = args.expected.read_bytes()
    else:
        engine = _settings(args).engine
        expected = record_expected(args.model, reference, engine, spec.conf_threshold)
    import onnx

    try:
        package_version = metadata.version("yolov8_trt_ros")
    except metadata.PackageNotFoundError:  # run from a checkout
        package_version = "checkout"

    manifest = bundle.create_bundle(
        args.out,
        name=args.name,
        version=args.version,
        model=args.model,
        classes=_classes(args),
        reference=dict(reference),
        expected_json=expected,
        private_key=signing.load_private_key(args.key, _passphrase(args)),
        int8_model=args.int8_model,
        calibration_cache=args.calibration_cache,
        smoke=spec,
        tools={"yolov8_trt_ros": str(package_version), "onnx": onnx.__version__},
    )
    print(
        f"{args.out}: {manifest.name} {manifest.version} ({manifest.release_id}), {len(manifest.files)} files"
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    scratch = Path(tempfile.mkdtemp(prefix="bundle-verify-"))
    try:
        manifest = installer.verify_only(args.bundle, args.public_key, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"ok: {manifest.name} {manifest.release_id}, {len(manifest.files)} files verified")
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    result = installer.install(
        args.bundle,
        ModelStore(args.store),
        args.public_key,
        _settings(args),
        gate=not args.no_gate,
        force=args.force,
        progress=lambda step, msg: print(f"[{step}] {msg}", flush=True),
    )
    print(f"installed {result.release} (previous: {result.previous})")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    old, new = rollback(ModelStore(args.store), reason=args.reason)
    print(f"rolled back: current {new} (was {old})")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    status = ModelStore(args.store).status()
    if args.json:
        print(json.dumps(status.as_dict()))
    else:
        print(f"current: {status.current} (version {status.version}); previous: {status.previous}")
    return 0 if status.current else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m yolov8_trt_ros.deploy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("keygen", help="new Ed25519 signing key pair")
    p.add_argument("--private", type=Path, required=True)
    p.add_argument("--public", type=Path, required=True)
    p.add_argument("--passphrase-env", help="encrypt the private key with the passphrase in this variable")
    p.set_defaults(fn=cmd_keygen)

    p = sub.add_parser("create", help="sign a model bundle")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--model", type=Path, required=True, help="the FP32 ONNX")
    p.add_argument("--int8-model", type=Path, help="its Q/DQ INT8 ONNX (scripts/quantize_int8.py)")
    p.add_argument("--calibration-cache", type=Path, help="TensorRT INT8 calibration cache")
    p.add_argument("--classes", help="file (one name a line) or comma list; default: the ONNX metadata")
    p.add_argument("--reference", type=Path, nargs="+", required=True, help="reference images (BGR files)")
    p.add_argument("--expected", type=Path, help="expected detections JSON; default: record them now")
    p.add_argument("--key", type=Path, required=True, help="the private signing key")
    p.add_argument("--passphrase-env", help="the key's passphrase is in this environment variable")
    p.add_argument("--conf-threshold", type=float, default=0.25)
    p.add_argument("--min-iou", type=float, default=0.5)
    p.add_argument("--min-recall", type=float, default=0.9)
    p.add_argument("--min-precision", type=float, default=0.8)
    _engine_args(p, "onnxruntime")
    p.set_defaults(fn=cmd_create, precision="fp32")

    for name, fn, help_ in (
        ("verify", cmd_verify, "check signature and hashes"),
        ("install", cmd_install, "verify, gate and switch"),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("bundle", type=Path)
        p.add_argument("--public-key", type=Path, default=DEFAULT_PUBLIC_KEY)
        if name == "install":
            p.add_argument("--store", type=Path, default=DEFAULT_ROOT)
            p.add_argument("--no-gate", action="store_true", help="skip the health gate (emergencies only)")
            p.add_argument("--force", action="store_true", help="install a release the node rejected before")
            _engine_args(p, None)
        p.set_defaults(fn=fn)

    p = sub.add_parser("rollback", help="make the previous release current")
    p.add_argument("--store", type=Path, default=DEFAULT_ROOT)
    p.add_argument("--reason", default="operator")
    p.set_defaults(fn=cmd_rollback)

    p = sub.add_parser("status", help="current and previous release")
    p.add_argument("--store", type=Path, default=DEFAULT_ROOT)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except (BundleError, GateError, StoreError, installer.InstallError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
