"""The dataset layout rule, in one place (stdlib only).

A dataset is the dogImages layout ``<root>/{train,valid,test}/<NNN.Class_Name>/<image>``, either at
the top of the archive/folder or inside exactly one top-level folder. The ingest Lambda imports this
module (through the training-code layer) to validate zip member names, and the training code uses it
to read folders, so both sides agree on what a valid dataset is. Keep it free of torch and PIL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

SPLITS = ("train", "valid", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

# "001.Affenpinscher" -> "Affenpinscher"; a folder without the numeric prefix keeps its whole name.
_CLASS_PREFIX = re.compile(r"^\d+\.")
# Archive junk that is never part of a dataset (macOS resource forks, Finder/Explorer metadata).
_JUNK_PARTS = ("__MACOSX",)
_JUNK_PREFIXES = ("._", ".")


class DatasetLayoutError(ValueError):
    """The dataset does not follow the ``<root>/{train,valid,test}/<class>/<image>`` layout."""


@dataclass(frozen=True)
class Member:
    """Where one image sits in the layout. ``root`` is "" when the splits are at the top."""

    split: str
    class_dir: str
    filename: str
    root: str


def class_name(class_dir: str) -> str:
    """Human class name of a class folder: "001.Affenpinscher" -> "Affenpinscher"."""
    return _CLASS_PREFIX.sub("", class_dir, count=1)


def locate(path: str) -> Member | None:
    """Place a file path (zip member name or relative path, "/" or "\\" separated) in the layout.

    Returns None for anything that is not an image inside the layout: directories (trailing "/"),
    ``__MACOSX/`` and dot-files such as ``.DS_Store``, non-image suffixes, files at the wrong depth.
    """
    normalized = path.replace("\\", "/")
    if normalized.endswith("/"):
        return None
    parts = [part for part in normalized.split("/") if part not in ("", ".")]
    if any(part in _JUNK_PARTS for part in parts):
        return None
    if len(parts) == 4:
        root, split, class_dir, filename = parts
    elif len(parts) == 3:
        root = ""
        split, class_dir, filename = parts
    else:
        return None
    if split not in SPLITS or filename.startswith(_JUNK_PREFIXES) or class_dir.startswith("."):
        return None
    if not filename.lower().endswith(IMAGE_SUFFIXES):
        return None
    return Member(split=split, class_dir=class_dir, filename=filename, root=root)


@dataclass
class LayoutSummary:
    """What a valid dataset holds: its root folder, sorted class folders and image counts per split."""

    root: str
    class_dirs: list[str]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        """Class names without the "NNN." prefix, in class-index order."""
        return [class_name(class_dir) for class_dir in self.class_dirs]

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "class_dirs": list(self.class_dirs),
            "classes": self.classes,
            "counts": {split: dict(per_class) for split, per_class in self.counts.items()},
            "images": {split: sum(per_class.values()) for split, per_class in self.counts.items()},
        }


def summarize(paths: Iterable[str]) -> LayoutSummary:
    """Check a listing of file paths against the layout and summarize it.

    Paths outside the layout are ignored (see ``locate``). Raises DatasetLayoutError naming the
    problem: no images at all, images under more than one top-level folder, a missing split, a split
    whose class folders differ from train's (or a class folder with no images in some split).
    """
    counts: dict[str, dict[str, int]] = {split: {} for split in SPLITS}
    roots: set[str] = set()
    # A class folder that only holds non-images must still count as present (and empty).
    seen_class_dirs: dict[str, set[str]] = {split: set() for split in SPLITS}
    for path in paths:
        member = locate(path)
        if member is None:
            _note_class_dir(path, seen_class_dirs)
            continue
        roots.add(member.root)
        per_class = counts[member.split]
        per_class[member.class_dir] = per_class.get(member.class_dir, 0) + 1
        seen_class_dirs[member.split].add(member.class_dir)

    if not roots:
        raise DatasetLayoutError(
            "no images found in the <root>/{train,valid,test}/<NNN.Class_Name>/<image> layout "
            f"(image suffixes: {', '.join(IMAGE_SUFFIXES)})"
        )
    if len(roots) > 1:
        shown = ", ".join(repr(root) if root else "'' (top level)" for root in sorted(roots))
        raise DatasetLayoutError(f"images under more than one top-level folder: {shown}; expected one root")
    root = roots.pop()

    missing = [split for split in SPLITS if not counts[split]]
    if missing:
        raise DatasetLayoutError(
            f"missing split(s) {', '.join(missing)}: expected {'/'.join(SPLITS)} folders with class "
            f"folders of images under {root + '/' if root else 'the top level'}"
        )

    for split in SPLITS:
        empty = sorted(seen_class_dirs[split] - set(counts[split]))
        if empty:
            raise DatasetLayoutError(f"empty class folder(s) in {split}: {', '.join(empty[:10])}")

    reference = set(counts["train"])
    for split in SPLITS[1:]:
        classes = set(counts[split])
        if classes != reference:
            only_train = sorted(reference - classes)
            only_here = sorted(classes - reference)
            details = []
            if only_train:
                details.append(f"missing from {split}: {', '.join(only_train[:10])}")
            if only_here:
                details.append(f"not in train: {', '.join(only_here[:10])}")
            raise DatasetLayoutError(f"class folders differ between train and {split} ({'; '.join(details)})")

    names = [class_name(class_dir) for class_dir in reference]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise DatasetLayoutError(f"class folders map to the same class name: {', '.join(duplicates)}")

    return LayoutSummary(root=root, class_dirs=sorted(reference), counts=counts)


def _note_class_dir(path: str, seen: dict[str, set[str]]) -> None:
    """Record a class folder seen through a directory entry or a non-image file."""
    parts = [part for part in path.replace("\\", "/").split("/") if part not in ("", ".")]
    if any(part in _JUNK_PARTS for part in parts):
        return
    for split_index in (0, 1):
        if len(parts) > split_index + 1 and parts[split_index] in SPLITS:
            class_dir = parts[split_index + 1]
            if not class_dir.startswith(".") and (len(parts) > split_index + 2 or path.endswith("/")):
                seen[parts[split_index]].add(class_dir)
            return
