"""The features artifact: what features.py writes and tuning trials read (file names in dogclf.contract).

features.py writes into SM_MODEL_DIR, which SageMaker tars to model.tar.gz:
- one ``contract.FEATURES_SPLIT_FILE`` per split (``train.pt``, ``valid.pt``, ``test.pt``):
  ``torch.save({"features": float32 [N, D], "targets": int64 [N]})``, rows in data.scan's sample
  order, undecodable images left out (as the in-job feature cache leaves them out);
- ``contract.FEATURES_HEAD_INIT_FILE`` (head_init.pt): the head's initial state_dict for the job's seed,
  as engine.main initialises it (optional for readers: a trial without it seeds the head itself);
- ``contract.FEATURES_META_FILE`` (features.json): format_version, features_key, dataset_id, weights,
  seed, image_size, resize_size, framework_version (the hyperparameter), torch_version and
  torchvision_version (what ran), backbone, feature_dim, classes and class_dirs (class-index order),
  counts (rows per split), dataset (the layout summary: images per split and per class), skipped
  images, device, precision, seconds and images_per_second.

A trial's features channel holds that model.tar.gz (the channel's S3Uri is the object). The members
are read straight out of the archive, without unpacking it to disk; a folder that already holds
features.json (the archive unpacked, or a features job's model dir) works too.

Every problem with the artifact is a FeaturesError. It is permanent (the same files fail the same way
on a retry), so failure.run_main reports it like bad data: one line, exit code 2, the failure file.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dogclf.contract import (
    FEATURES_FORMAT_VERSION,
    FEATURES_HEAD_INIT_FILE,
    FEATURES_META_FILE,
    FEATURES_SPLIT_FILE,
    MODEL_ARCHIVE,
)
from dogclf.layout import SPLITS
from dogclf.model import FEATURE_DIM

# What a trial reads from features.json beyond format_version.
REQUIRED_META = ("weights", "image_size", "feature_dim", "classes", "class_dirs", "counts", "dataset")


class FeaturesError(RuntimeError):
    """The features cannot serve this run: missing, unreadable, or made for other settings."""


@dataclass
class FeatureSet:
    meta: dict[str, Any]
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]]  # split -> (features [N, D], targets [N])
    source: str
    head_init: dict[str, torch.Tensor] | None = None  # the head's initial state_dict for meta["seed"]

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])


def split_file(split: str) -> str:
    return FEATURES_SPLIT_FILE.format(split=split)


def write_split(model_dir: Path, split: str, features: torch.Tensor, targets: torch.Tensor) -> Path:
    path = model_dir / split_file(split)
    payload = {
        "features": features.detach().to("cpu", torch.float32),
        "targets": targets.to("cpu", torch.int64),
    }
    torch.save(payload, path)
    return path


def write_head_init(model_dir: Path, head: torch.nn.Module) -> Path:
    path = model_dir / FEATURES_HEAD_INIT_FILE
    torch.save({key: value.detach().cpu() for key, value in head.state_dict().items()}, path)
    return path


def write_meta(model_dir: Path, meta: dict[str, Any]) -> Path:
    path = model_dir / FEATURES_META_FILE
    path.write_text(json.dumps({"format_version": FEATURES_FORMAT_VERSION, **meta}, indent=2))
    return path


def read_features(location: str | Path) -> FeatureSet:
    """Read features.json and every split file from an archive or a folder (see the module docstring)."""
    path = Path(location)
    if path.is_dir() and (path / FEATURES_META_FILE).is_file():
        blobs = _read_folder(path)
    elif path.is_dir():
        blobs = _read_archive(_archive_in(path))
    elif path.is_file():
        blobs = _read_archive(path)
    else:
        raise FeaturesError(f"features channel {path} does not exist")
    try:
        meta = json.loads(blobs[FEATURES_META_FILE])
    except (KeyError, ValueError) as error:
        raise FeaturesError(f"{path}: no readable {FEATURES_META_FILE} ({error})") from error
    if meta.get("format_version") != FEATURES_FORMAT_VERSION:
        raise FeaturesError(
            f"{path}: features format {meta.get('format_version')!r}, this code reads "
            f"{FEATURES_FORMAT_VERSION}; recompute the features with this code's features.py"
        )
    missing = [key for key in REQUIRED_META if key not in meta]
    if missing:
        raise FeaturesError(f"{path}: {FEATURES_META_FILE} lacks {', '.join(missing)}")
    if meta["feature_dim"] != FEATURE_DIM:
        raise FeaturesError(f"{path}: {meta['feature_dim']}-d features; the head takes {FEATURE_DIM}-d ones")
    splits = {split: _load_split(blobs, split, meta, path) for split in SPLITS}
    return FeatureSet(meta=meta, splits=splits, source=str(path), head_init=_load_head_init(blobs, path))


def check_compatible(meta: dict[str, Any], *, image_size: int, weights: str, source: str) -> None:
    """The features must come from the backbone and input size this trial was configured for."""
    for name, wanted in (("image_size", image_size), ("weights", weights)):
        if meta.get(name) != wanted:
            raise FeaturesError(
                f"features in {source} were computed with {name} {meta.get(name)!r}, but this trial has "
                f"--{name} {wanted!r}; run features.py with --{name} {wanted} or pass the matching value"
            )


def _archive_in(folder: Path) -> Path:
    archives = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(".tar.gz"))
    if (folder / MODEL_ARCHIVE).is_file():
        return folder / MODEL_ARCHIVE
    if len(archives) == 1:
        return archives[0]
    names = ", ".join(sorted(p.name for p in folder.iterdir())[:5]) or "nothing"
    raise FeaturesError(
        f"features channel {folder} holds neither {FEATURES_META_FILE} nor one {MODEL_ARCHIVE} "
        f"(found: {names})"
    )


def _wanted() -> set[str]:
    return {FEATURES_META_FILE, FEATURES_HEAD_INIT_FILE, *(split_file(split) for split in SPLITS)}


def _read_folder(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in _wanted() if (folder / name).is_file()}


def _read_archive(archive: Path) -> dict[str, bytes]:
    """The wanted members' bytes, by name (SageMaker tars the model dir as ``./<name>`` or ``<name>``)."""
    wanted, blobs = _wanted(), {}
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for info in tar:
                name = info.name.removeprefix("./")
                if name in wanted and info.isreg():
                    member = tar.extractfile(info)
                    if member is not None:
                        blobs[name] = member.read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise FeaturesError(f"{archive} is not a readable tar archive: {error}") from error
    return blobs


def _load_head_init(blobs: dict[str, bytes], source: Path) -> dict[str, torch.Tensor] | None:
    if FEATURES_HEAD_INIT_FILE not in blobs:
        return None
    try:
        state = torch.load(io.BytesIO(blobs[FEATURES_HEAD_INIT_FILE]), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        raise FeaturesError(f"{source}: {FEATURES_HEAD_INIT_FILE} is not readable ({error})") from error
    if not isinstance(state, dict):
        raise FeaturesError(f"{source}: {FEATURES_HEAD_INIT_FILE} is not a state_dict")
    return state


def _load_split(
    blobs: dict[str, bytes], split: str, meta: dict[str, Any], source: Path
) -> tuple[torch.Tensor, torch.Tensor]:
    name = split_file(split)
    if name not in blobs:
        raise FeaturesError(f"{source}: {name} is missing")
    try:
        payload = torch.load(io.BytesIO(blobs[name]), map_location="cpu", weights_only=True)
        features, targets = payload["features"], payload["targets"]
    except Exception as error:  # torch raises many types for a damaged file
        raise FeaturesError(f"{source}: {name} is not a readable features file ({error})") from error
    rows = meta.get("counts", {}).get(split)
    dim, classes = meta.get("feature_dim"), len(meta.get("classes", []))
    if not (
        isinstance(features, torch.Tensor)
        and isinstance(targets, torch.Tensor)
        and features.dtype == torch.float32
        and targets.dtype == torch.int64
        and features.dim() == 2
        and features.shape == (rows, dim)
        and targets.shape == (rows,)
    ):
        raise FeaturesError(
            f"{source}: {name} does not hold {rows} rows of {dim} float32 features and int64 targets "
            f"(as {FEATURES_META_FILE} says)"
        )
    if rows and not (int(targets.min()) >= 0 and int(targets.max()) < classes):
        raise FeaturesError(f"{source}: {name} has targets outside the {classes} classes")
    return features, targets
