"""Class names: from a labels file (overriding the model's) or from the model's metadata.

A labels file is either plain text, one name per line in class-id order (darknet's
``coco.names``), or YAML (``.yaml``/``.yml``): a list of names, a mapping ``id: name``, or an
ultralytics dataset file whose ``names`` key is either. Ids must run 0..N-1 without gaps and
names must be unique, because parameters name classes by either: a gap or a duplicate would
make a name or id mean nothing, or two things.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from yolov8_trt_ros.core.config import ConfigError

#: A labels file larger than this is surely not one (a model or an image passed by mistake).
MAX_LABELS_FILE_BYTES = 1 << 20


def class_name(class_id: int, names: Sequence[str]) -> str:
    """The class's name where known, else its number (a model without names still gets labels)."""
    return names[class_id] if 0 <= class_id < len(names) else str(class_id)


def _names_from_yaml(data: Any, path: Path) -> list[str]:
    if isinstance(data, Mapping) and "names" in data:
        data = data["names"]  # an ultralytics dataset YAML
    if isinstance(data, list):
        return [str(n) for n in data]
    if isinstance(data, Mapping):
        try:
            by_id = {int(k): str(v) for k, v in data.items()}
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"labels file {path}: keys must be class ids ({exc})") from exc
        missing = sorted(set(range(len(by_id))) - set(by_id))
        if missing:
            last = len(by_id) - 1
            raise ConfigError(f"labels file {path}: class ids must run 0..{last}; missing {missing[:10]}")
        return [by_id[i] for i in range(len(by_id))]
    raise ConfigError(
        f"labels file {path}: YAML must be a list of names, an 'id: name' mapping or have a "
        f"'names' key, not {type(data).__name__}"
    )


def _names_from_text(text: str, path: Path) -> list[str]:
    lines = [ln.strip() for ln in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()  # a trailing newline or blank lines at the end
    for i, name in enumerate(lines):
        if not name:
            raise ConfigError(f"labels file {path}: line {i + 1} is empty (a line per class id, in order)")
    return lines


def read_labels_file(path: str | Path) -> tuple[str, ...]:
    """Class names (index = class id) from ``path``; raises ConfigError saying what is wrong."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_LABELS_FILE_BYTES:
            raise ConfigError(f"labels file {path}: {size} bytes is too large for a labels file")
        text = path.read_text(encoding="utf-8")
    except ConfigError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"labels file {path}: cannot read it ({exc})") from exc
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"labels file {path}: not valid YAML ({exc})") from exc
        names = _names_from_yaml(data, path)
    else:
        names = _names_from_text(text, path)
    if not names:
        raise ConfigError(f"labels file {path}: no class names in it")
    blank = [i for i, n in enumerate(names) if not n.strip()]
    if blank:
        raise ConfigError(f"labels file {path}: class ids {blank[:10]} have empty names")
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise ConfigError(f"labels file {path}: {name!r} names both class {seen[name]} and class {i}")
        seen[name] = i
    return tuple(names)


def resolve_class_names(
    model_names: Sequence[str], num_classes: int, labels_file: str = ""
) -> tuple[str, ...]:
    """The node's class names: the labels file's if given, else the model's; always ``num_classes``.

    A labels file with another count than the model's classes is refused rather than padded
    or cut, since it was then written for another model. Model names that are missing (no
    metadata) are filled with the class id as text, so ``names[class_id]`` never fails.
    """
    if labels_file:
        names = read_labels_file(labels_file)
        if len(names) != num_classes:
            raise ConfigError(
                f"labels file {labels_file}: {len(names)} names, but the model has {num_classes} classes"
            )
        return names
    names = tuple(str(n) for n in model_names)[:num_classes]
    return names + tuple(str(i) for i in range(len(names), num_classes))
