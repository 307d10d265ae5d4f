"""Reading a dataset folder in the dogImages layout into datasets and loaders.

Rules (the layout rule itself lives in ``layout.py``):
- Class order is the sorted class-folder names of ``train``; ``classes.json`` holds the names
  without the ``NNN.`` prefix in that order.
- Layout problems (missing split, empty class, class sets differing between splits, no images)
  raise DatasetLayoutError before any training starts.
- Undecodable images are SKIPPED and COUNTED, not fatal: one corrupt JPEG among thousands should
  not kill a tuning job. They are reported by path in the log and in metrics.json. If more than
  ``max_bad_fraction`` of a split is undecodable the run fails (BadImagesError), because then the
  data, not one file, is broken.

Two shapes of a split folder (a channel), read to the same index (same samples, same order, same
labels):
- class folders ``<NNN.Class_Name>/<image>`` (tests, users' own data);
- tar shards ``*.tar`` (what ingest writes: ``<split>-00000.tar``, ...) whose members are
  ``<NNN.Class_Name>/<image>``; the same layout rule (layout.locate) places each member.

Shards are read in place, by random access: the tar headers are scanned once (``tarfile`` seeks
over the member data) for each member's data offset and size, and an image is one ``os.pread``.
Why not extract them into the job's folder first: that writes the dataset to the volume a second
time (the default volume is 30 GB) and delays the first batch by a full copy, and it would turn
member names from the archive into file paths. The page cache serves later epochs as it would
extracted files. Each process (each DataLoader worker) opens its own file handles.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import torch
from torch.utils.data import Dataset

from dogclf.images import InvalidImageError, decode_image
from dogclf.layout import SPLITS, DatasetLayoutError, LayoutSummary, locate, summarize

SHARD_SUFFIX = ".tar"


class BadImagesError(RuntimeError):
    """Too many undecodable images in one split."""


@dataclass(frozen=True)
class TarMember:
    """One image inside a tar shard: ``size`` bytes at ``offset`` of the file ``shard``."""

    shard: str
    name: str
    offset: int
    size: int

    def __str__(self) -> str:  # how a bad image is reported: <shard>:<member>
        return f"{self.shard}:{self.name}"


ImageSource: TypeAlias = str | TarMember  # a file path, or a member of a shard


@dataclass
class DatasetIndex:
    summary: LayoutSummary
    split_dirs: dict[str, Path]
    samples: dict[str, list[tuple[ImageSource, int]]]

    @property
    def classes(self) -> list[str]:
        return self.summary.classes

    @property
    def class_dirs(self) -> list[str]:
        return self.summary.class_dirs


def find_split_dirs(
    data_dir: str | None,
    train_dir: str | None = None,
    valid_dir: str | None = None,
    test_dir: str | None = None,
) -> dict[str, Path]:
    """Per-split folders from separate channels (all three) or from one folder holding the splits."""
    given = {"train": train_dir, "valid": valid_dir, "test": test_dir}
    if all(given.values()):
        return {split: Path(str(path)) for split, path in given.items()}
    if any(given.values()) and not data_dir:
        missing = [split for split, path in given.items() if not path]
        raise DatasetLayoutError(
            f"channels for {', '.join(missing)} are missing: give all of train/valid/test channels "
            "(SM_CHANNEL_TRAIN/VALID/TEST) or one channel with the whole dataset (SM_CHANNEL_TRAINING)"
        )
    if not data_dir:
        raise DatasetLayoutError(
            "no data: set SM_CHANNEL_TRAINING (or --data_dir), or the three split channels"
        )
    root = Path(data_dir)
    if not root.is_dir():
        raise DatasetLayoutError(f"data folder {root} does not exist")
    if not (root / "train").is_dir():
        # One top-level folder (e.g. dogImages/) is allowed, as in the zip.
        children = [c for c in root.iterdir() if c.is_dir() and not c.name.startswith((".", "__MACOSX"))]
        nested = [c for c in children if (c / "train").is_dir()]
        if len(nested) != 1:
            raise DatasetLayoutError(
                f"{root} holds no train/valid/test folders (directly or inside one top-level folder); "
                f"found: {', '.join(sorted(c.name for c in children)) or 'nothing'}"
            )
        root = nested[0]
    return {split: root / split for split in SPLITS}


def scan(split_dirs: dict[str, Path]) -> DatasetIndex:
    """List the images of every split and check the layout (raises DatasetLayoutError)."""
    relative_paths: list[str] = []
    sources: dict[str, ImageSource] = {}  # "<split>/<class_dir>/<image>" -> where its bytes are
    for split in SPLITS:
        split_dir = split_dirs[split]
        if not split_dir.is_dir():
            raise DatasetLayoutError(f"missing split {split}: {split_dir} is not a folder")
        shards = sorted(
            path for path in split_dir.iterdir() if path.suffix == SHARD_SUFFIX and path.is_file()
        )
        if shards:
            _index_shards(split, shards, split_dir, relative_paths, sources)
            continue
        for class_path in sorted(split_dir.iterdir()):
            class_dir = class_path.name
            if not class_path.is_dir():
                continue
            relative_paths.append(f"{split}/{class_dir}/")
            for name in sorted(p.name for p in class_path.iterdir()):
                relative_paths.append(f"{split}/{class_dir}/{name}")
                sources[relative_paths[-1]] = str(class_path / name)
    summary = summarize(relative_paths)
    index_of = {class_dir: index for index, class_dir in enumerate(summary.class_dirs)}
    samples: dict[str, list[tuple[ImageSource, int]]] = {split: [] for split in SPLITS}

    # Sorted by class folder, then file name: folders and shards give the same order.
    for relative in sorted(
        relative_paths, key=lambda path: [p for p in path.split("/") if p not in ("", ".")]
    ):
        member = locate(relative)
        if member is not None:
            samples[member.split].append((sources[relative], index_of[member.class_dir]))
    return DatasetIndex(summary=summary, split_dirs=split_dirs, samples=samples)


def _index_shards(
    split: str,
    shards: list[Path],
    split_dir: Path,
    relative_paths: list[str],
    sources: dict[str, ImageSource],
) -> None:
    """Add the members of a split's shards; class folders and shards do not mix in one split."""
    folders = [path.name for path in split_dir.iterdir() if path.is_dir() and not path.name.startswith(".")]
    if folders:
        raise DatasetLayoutError(
            f"{split_dir} holds both tar shards and class folders ({', '.join(sorted(folders)[:3])}); "
            "give a split as one or the other"
        )
    for shard in shards:
        try:
            with tarfile.open(shard, mode="r:") as tar:  # uncompressed only: members are read in place
                infos = list(tar)
        except (tarfile.TarError, OSError) as error:
            raise DatasetLayoutError(f"{shard} is not a readable uncompressed tar: {error}") from error
        for info in infos:
            if info.isdir():
                relative_paths.append(f"{split}/{info.name.rstrip('/')}/")  # an empty class folder
                continue
            if not info.isreg() or info.sparse is not None:
                continue  # links, devices, sparse files: never images
            relative = f"{split}/{info.name}"
            if locate(relative) is None:
                continue
            if relative in sources:
                raise DatasetLayoutError(f"{info.name} appears twice in the {split} shards ({shard.name})")
            relative_paths.append(relative)
            sources[relative] = TarMember(str(shard), info.name, info.offset_data, info.size)


def sample_name(source: ImageSource, split_dir: Path) -> str:
    """``<class_dir>/<image>`` of a sample, whatever holds it (for reports and comparisons)."""
    if isinstance(source, TarMember):
        return "/".join(part for part in source.name.split("/") if part not in ("", "."))
    return Path(source).relative_to(split_dir).as_posix()


class ImageListDataset(Dataset):
    """(source, target) samples -> (tensor or None, target, name). None marks an undecodable image."""

    def __init__(self, samples: Sequence[tuple[ImageSource, int]], transform: Any) -> None:
        self.samples = samples
        self.transform = transform
        self._pid = os.getpid()
        self._handles: dict[str, int] = {}  # shard path -> file descriptor, of this process only

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        source, target = self.samples[index]
        try:
            image = decode_image(
                self._read(source) if isinstance(source, TarMember) else source,
                min_size=getattr(self.transform, "decode_size", None),  # the preset's, as in serving
            )
        except InvalidImageError:
            return None, target, str(source)
        return self.transform(image), target, str(source)

    def _read(self, member: TarMember) -> bytes:
        """The member's bytes: one positional read, so no shared file position between threads."""
        if self._pid != os.getpid():  # a forked DataLoader worker: open its own handles
            self._handles, self._pid = {}, os.getpid()
        handle = self._handles.get(member.shard)
        if handle is None:
            handle = self._handles[member.shard] = os.open(member.shard, os.O_RDONLY)
        data = os.pread(handle, member.size, member.offset)
        if len(data) != member.size:  # the shard changed or was cut short under us: not a bad image
            raise OSError(f"{member}: read {len(data)} of {member.size} bytes")
        return data

    def __getstate__(self) -> dict[str, Any]:  # spawned workers (and pickling) get no handles
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state

    def close(self) -> None:
        for handle in self._handles.values():
            os.close(handle)
        self._handles = {}

    def __del__(self) -> None:
        if getattr(self, "_pid", None) == os.getpid():
            self.close()


def collate_skipping_bad(batch):
    """Stack the decodable images; return the paths of the undecodable ones separately."""
    good = [(image, target) for image, target, _ in batch if image is not None]
    bad = [path for image, _, path in batch if image is None]
    if good:
        images = torch.stack([image for image, _ in good])
        targets = torch.tensor([target for _, target in good], dtype=torch.long)
    else:
        images, targets = torch.empty(0), torch.empty(0, dtype=torch.long)
    return images, targets, bad


@dataclass
class BadImageTracker:
    """Counts skipped images per split and fails the run past ``max_fraction``."""

    max_fraction: float
    bad: dict[str, set[str]] = field(default_factory=dict)

    def add(self, split: str, paths: list[str]) -> None:
        seen = self.bad.setdefault(split, set())
        new = [path for path in paths if path not in seen]
        for path in new:
            print(f"WARNING: skipping undecodable image in {split}: {path}", flush=True)
        seen.update(new)

    def check(self, split: str, total: int) -> None:
        count = len(self.bad.get(split, ()))
        if total and count / total > self.max_fraction:
            raise BadImagesError(
                f"{count} of {total} images in {split} are undecodable (more than "
                f"{self.max_fraction:.0%}); first ones: {', '.join(sorted(self.bad[split])[:5])}"
            )

    def to_dict(self) -> dict[str, object]:
        return {
            "skipped_images": {split: len(paths) for split, paths in self.bad.items()},
            "skipped_paths": {split: sorted(paths)[:100] for split, paths in self.bad.items()},
        }
