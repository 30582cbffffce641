"""The robot's model directory and its one atomic switch.

Layout (``/var/lib/yolov8_trt_ros/models`` by default)::

    releases/<version>-<sha12>/   model.onnx, model.int8.onnx, classes.txt, reference/, manifest.*
    current  -> releases/<id>     what the node loads (model_path: <store>/current/model.onnx)
    previous -> releases/<id>     what ``rollback`` and a failed reload go back to
    releases/<id>/PREVIOUS        the release it replaced (rollbacks go back step by step)
    releases/<id>/REJECTED        why the node rolled it back (a release that failed to load)
    .staging-*/                   a bundle being verified and gated; never read by the node
    history.jsonl                 one line per install, rollback and failure

A switch writes a new symlink beside the old one and ``rename``s it over ``current``: POSIX
rename is atomic, so a reader (the node, a crash, a power cut) sees the old target or the new
one, never neither. The directory is fsynced after each rename so the switch survives a power
cut. Leftovers of an install killed midway (``.staging-*``, ``*.new`` links) are removed by the
next operation; they are never referenced by ``current``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yolov8_trt_ros.deploy.manifest import MANIFEST_NAME, MODEL_NAME, Manifest

DEFAULT_ROOT = Path("/var/lib/yolov8_trt_ros/models")
PREDECESSOR = "PREVIOUS"  # in a release dir: the release it replaced
REJECTED = "REJECTED"  # in a release dir: why the node rolled it back
KEEP_RELEASES = 3  # current, previous and one more; older ones are pruned after a switch


class StoreError(Exception):
    """The store cannot do what was asked (nothing to roll back to, a lock held, ...)."""


@dataclass
class StoreStatus:
    current: str | None
    previous: str | None
    releases: list[str]
    version: str | None
    rejected: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "current": self.current,
            "previous": self.previous,
            "version": self.version,
            "releases": self.releases,
            "rejected": self.rejected,
        }


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """fsync every directory under ``path`` (files are fsynced as they are written)."""
    for dirpath, _dirs, _files in os.walk(path):
        fsync_dir(Path(dirpath))


class ModelStore:
    def __init__(self, root: Path = DEFAULT_ROOT) -> None:
        self.root = Path(root)
        self.releases = self.root / "releases"

    # --- reading ---------------------------------------------------------------------------
    def _link(self, name: str) -> str | None:
        try:
            target = os.readlink(self.root / name)
        except (FileNotFoundError, OSError):
            return None
        return Path(target).name

    @property
    def current(self) -> str | None:
        return self._link("current")

    @property
    def previous(self) -> str | None:
        return self._link("previous")

    @property
    def current_model(self) -> Path:
        """The path the node is configured with; resolves through the symlink at configure."""
        return self.root / "current" / MODEL_NAME

    def manifest(self, release: str) -> Manifest:
        return Manifest.from_bytes((self.releases / release / MANIFEST_NAME).read_bytes())

    def status(self) -> StoreStatus:
        releases = (
            sorted(p.name for p in self.releases.glob("*") if p.is_dir()) if self.releases.is_dir() else []
        )
        current = self.current
        version = None
        if current:
            with contextlib.suppress(Exception):
                version = self.manifest(current).version
        rejected = {r: why for r in releases if (why := self.rejected(r)) is not None}
        return StoreStatus(current, self.previous, releases, version, rejected)

    # --- writing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One installer at a time (flock: released by the kernel if the process is killed)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise StoreError(f"another install or rollback holds {self.root / '.lock'}") from exc
            yield

    def clean_leftovers(self) -> list[str]:
        """Remove what an install killed midway left: staging dirs and half-made links."""
        removed = []
        for p in list(self.root.glob(".staging-*")) + list(self.root.glob("*.new")):
            if p.is_symlink() or p.is_file():
                p.unlink()
            else:
                shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
        return removed

    def new_staging(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
        staging.chmod(0o755)  # mkdtemp makes it 0700; the node may run as another user
        return staging

    def commit_staging(self, staging: Path, release: str) -> Path:
        """Move a verified, gated staging dir to ``releases/<release>`` (rename: same filesystem)."""
        self.releases.mkdir(parents=True, exist_ok=True)
        target = self.releases / release
        fsync_tree(staging)
        if target.exists():  # the same release again (a re-install): keep the installed copy
            shutil.rmtree(staging)
        else:
            os.rename(staging, target)
            fsync_dir(self.releases)
        return target

    def _set_link(self, name: str, release: str) -> None:
        tmp = self.root / f"{name}.new"
        tmp.unlink(missing_ok=True)
        os.symlink(Path("releases") / release, tmp)
        os.replace(tmp, self.root / name)
        fsync_dir(self.root)

    def _predecessor(self, release: str) -> str | None:
        try:
            name = (self.releases / release / PREDECESSOR).read_text().strip()
        except OSError:
            return None
        return name if name and (self.releases / name / MODEL_NAME).is_file() else None

    def switch(self, release: str) -> None:
        """Make ``release`` current, the old current previous (the atomic step of an install).

        The release remembers what it replaced (``PREVIOUS`` in its directory), so rollbacks go
        back step by step: v1 → v2 → v3, rollback → v2, rollback → v1.
        """
        if not (self.releases / release / MODEL_NAME).is_file():
            raise StoreError(f"release {release} is not installed")
        old = self.current
        if old == release:
            return
        marker = self.releases / release / PREDECESSOR
        marker.write_text(f"{old or ''}\n")
        with open(marker, "rb") as f:
            os.fsync(f.fileno())
        if old is not None:
            self._set_link("previous", old)
        self._set_link("current", release)

    def rollback(self, reject: str = "") -> tuple[str, str]:
        """Make current's predecessor current; returns (from, to).

        ``reject`` (a reason) marks the release rolled back from as rejected (``REJECTED`` in its
        directory, read by ``status``): what the node does when a release fails to load.
        """
        cur = self.current
        prev = self._predecessor(cur) if cur else None
        if prev is None:
            prev = self.previous  # a store written before predecessors were recorded
        if cur is None or prev is None or prev == cur or not (self.releases / prev / MODEL_NAME).is_file():
            raise StoreError("no previous release to roll back to")
        if reject:
            (self.releases / cur / REJECTED).write_text(reject + "\n")
        self._set_link("current", prev)
        before = self._predecessor(prev)
        if before is not None:
            self._set_link("previous", before)
        else:
            (self.root / "previous").unlink(missing_ok=True)
            fsync_dir(self.root)
        return cur, prev

    def rejected(self, release: str) -> str | None:
        """Why the node rejected ``release``, or None."""
        try:
            return (self.releases / release / REJECTED).read_text().strip()
        except OSError:
            return None

    def prune(self, keep: int = KEEP_RELEASES) -> list[str]:
        """Delete the oldest releases beyond ``keep``, never current or previous."""
        protected = {self.current, self.previous}
        dirs = sorted(
            (p for p in self.releases.glob("*") if p.is_dir() and p.name not in protected),
            key=lambda p: p.stat().st_mtime,
        )
        extra = max(0, len(dirs) - max(0, keep - len(protected - {None})))
        removed = []
        for p in dirs[:extra]:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
        return removed

    def log(self, event: str, **fields: Any) -> None:
        """Append one line to ``history.jsonl`` (what field engineers read first after an update)."""
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "event": event, **fields})
        with open(self.root / "history.jsonl", "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())


def rollback(store: ModelStore, reason: str = "operator", reject: bool = False) -> tuple[str, str]:
    """Make the previous release current again (the node reloads it).

    Here, not in the installer: the node rolls back without the bundle and signing modules
    (and their ``cryptography``), which only installing needs.

    ``reject`` marks the release left as rejected (the node's automatic rollback).
    """
    with store.locked():
        store.clean_leftovers()
        old, new = store.rollback(reject=reason if reject else "")
        store.log("rollback", release=new, replaced=old, reason=reason)
        return old, new
