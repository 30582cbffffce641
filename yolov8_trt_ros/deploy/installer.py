"""Install a bundle: verify → stage → gate → switch, or leave the store as it was.

Every step before the switch works in a staging directory the node never reads; the switch is
one ``rename`` of the ``current`` symlink (``store.py``). So a bad signature, a wrong hash, a
truncated file, a model that fails to load or warm up, a failed smoke test, or the installer
killed at any point before the rename, all leave ``current`` on the previous model. Progress
goes to a callback (the CLI prints it) at each step, so a caller can also observe or stop
between steps.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from yolov8_trt_ros.core.config import EngineConfig
from yolov8_trt_ros.deploy import bundle, signing
from yolov8_trt_ros.deploy.gate import GateError, GateReport, NodeSettings, run_gate
from yolov8_trt_ros.deploy.manifest import BundleError, Manifest
from yolov8_trt_ros.deploy.store import REJECTED, ModelStore

Progress = Callable[[str, str], None]  # (step, message)


class InstallError(Exception):
    """The install failed; ``step`` is verify, stage, gate or switch. The store is unchanged."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step


@dataclass
class InstallResult:
    release: str
    version: str
    previous: str | None
    gate: GateReport | None
    already_current: bool = False


def _quiet(step: str, message: str) -> None:
    pass


def install(
    bundle_path: Path,
    store: ModelStore,
    public_key_path: Path,
    engine: EngineConfig | NodeSettings,
    *,
    gate: bool = True,
    force: bool = False,
    progress: Progress = _quiet,
) -> InstallResult:
    """Install ``bundle_path`` into ``store`` and make it current (see module docstring)."""
    public_key = signing.load_public_key(public_key_path)
    with store.locked():
        leftovers = store.clean_leftovers()
        if leftovers:
            progress("clean", f"removed leftovers of an interrupted install: {', '.join(leftovers)}")
        try:
            manifest = bundle.read_manifest(bundle_path, public_key)
        except BundleError as exc:
            store.log("install_failed", bundle=str(bundle_path), step="verify", error=str(exc))
            raise InstallError("verify", str(exc)) from exc
        progress("verify", f"signature ok: {manifest.name} {manifest.version} (key {manifest.key_id})")
        rejected = store.rejected(manifest.release_id)
        if rejected is not None and not force:
            message = f"{manifest.release_id} was rejected on this robot ({rejected}); --force to try again"
            store.log("install_failed", bundle=str(bundle_path), step="verify", error=message)
            raise InstallError("verify", message)
        if rejected is not None:
            (store.releases / manifest.release_id / REJECTED).unlink()
        if store.current == manifest.release_id:
            progress("switch", f"{manifest.release_id} is already current")
            return InstallResult(manifest.release_id, manifest.version, store.previous, None, True)
        staging = store.new_staging()
        step = "stage"
        try:
            manifest = bundle.extract_verified(bundle_path, public_key, staging)
            progress("stage", f"{len(manifest.files)} files verified and written to {staging.name}")
            report = None
            if gate:
                step = "gate"
                report = run_gate(staging, manifest, engine)
                progress("gate", f"passed: {report.summary()}")
            else:
                progress("gate", "SKIPPED (--no-gate): the node's reload is the only check")
            step = "switch"
            release_dir = store.commit_staging(staging, manifest.release_id)
            previous = store.current
            store.switch(release_dir.name)
        except (BundleError, GateError, OSError) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            store.log("install_failed", bundle=str(bundle_path), step=step, error=str(exc))
            raise InstallError(step, str(exc)) from exc
        progress("switch", f"current -> {manifest.release_id} (previous: {previous})")
        store.log("installed", release=manifest.release_id, version=manifest.version, previous=previous)
        pruned = store.prune()
        if pruned:
            progress("prune", f"removed old releases {', '.join(pruned)}")
        return InstallResult(manifest.release_id, manifest.version, previous, report)


def verify_only(bundle_path: Path, public_key_path: Path, scratch: Path) -> Manifest:
    """Signature and every file's hash, extracted into ``scratch`` (the caller removes it)."""
    return bundle.extract_verified(bundle_path, signing.load_public_key(public_key_path), scratch)
