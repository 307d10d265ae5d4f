"""The features artifact's reader and its checks, in process (dogclf/feature_files.py)."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

import pytest
import torch

from dogclf import contract
from dogclf.feature_files import FeaturesError, check_compatible, read_features, write_meta, write_split

ROWS = {"train": 6, "valid": 2, "test": 3}


def _artifact(folder: Path, **meta_overrides: object) -> Path:
    folder.mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)
    for split, rows in ROWS.items():
        targets = torch.arange(rows) % 2
        write_split(folder, split, torch.randn(rows, 512, generator=generator), targets)
    meta = {
        "weights": "none",
        "image_size": 64,
        "feature_dim": 512,
        "classes": ["A", "B"],
        "class_dirs": ["001.A", "002.B"],
        "counts": ROWS,
        "dataset": {"images": ROWS},
        **meta_overrides,
    }
    write_meta(folder, {key: value for key, value in meta.items() if value is not None})
    return folder


def test_folder_and_archive_read_back_what_was_written(tmp_path):
    folder = _artifact(tmp_path / "model")
    archive = tmp_path / "channel" / contract.MODEL_ARCHIVE
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    from_folder, from_channel = read_features(folder), read_features(archive.parent)
    assert from_folder.meta["format_version"] == contract.FEATURES_FORMAT_VERSION
    for split, rows in ROWS.items():
        features, targets = from_channel.splits[split]
        assert features.shape == (rows, 512) and targets.tolist() == [i % 2 for i in range(rows)]
        assert torch.equal(features, from_folder.splits[split][0])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"format_version": 99}, "features format 99, this code reads 1"),
        ({"classes": None}, "features.json lacks classes"),
        ({"feature_dim": 256}, "256-d features; the head takes 512-d ones"),
        ({"counts": {**ROWS, "test": 4}}, "test.pt does not hold 4 rows"),
        ({"classes": ["A"], "class_dirs": ["001.A"]}, "train.pt has targets outside the 1 classes"),
    ],
)
def test_an_artifact_that_disagrees_with_itself_is_a_features_error(tmp_path, overrides, message):
    folder = _artifact(tmp_path / "model", **overrides)
    with pytest.raises(FeaturesError, match=re.escape(message)):
        read_features(folder)


def test_a_missing_split_file_and_an_empty_channel_are_features_errors(tmp_path):
    folder = _artifact(tmp_path / "model")
    (folder / "valid.pt").unlink()
    with pytest.raises(FeaturesError, match=re.escape("valid.pt is missing")):
        read_features(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FeaturesError, match=re.escape("holds neither features.json nor one model.tar.gz")):
        read_features(tmp_path / "empty")
    with pytest.raises(FeaturesError, match="does not exist"):
        read_features(tmp_path / "nowhere")


def test_settings_must_match_the_trial(tmp_path):
    meta = json.loads((_artifact(tmp_path / "model") / contract.FEATURES_META_FILE).read_text())
    check_compatible(meta, image_size=64, weights="none", source="s")
    with pytest.raises(FeaturesError, match="image_size 64, but this trial has --image_size 224"):
        check_compatible(meta, image_size=224, weights="none", source="s")
    with pytest.raises(FeaturesError, match="weights 'none', but this trial has --weights 'imagenet'"):
        check_compatible(meta, image_size=64, weights="imagenet", source="s")
