"""Reading dataset folders: channel shapes, layout errors, undecodable images."""

from __future__ import annotations

import shutil

import pytest
import torch

from dogclf import presets
from dogclf.data import (
    BadImagesError,
    BadImageTracker,
    ImageListDataset,
    collate_skipping_bad,
    find_split_dirs,
    scan,
)
from dogclf.layout import DatasetLayoutError
from tools.sample_data import write_sample_tree


@pytest.fixture
def tiny(tmp_path):
    return write_sample_tree(
        tmp_path / "data" / "dogImages",
        num_classes=3,
        train_per_class=3,
        valid_per_class=2,
        test_per_class=2,
        image_size=32,
    )


def test_one_channel_with_top_folder_or_without(tiny):
    nested = find_split_dirs(str(tiny.parent))
    direct = find_split_dirs(str(tiny))
    assert nested == direct == {split: tiny / split for split in ("train", "valid", "test")}


def test_separate_channels(tiny):
    dirs = find_split_dirs(None, str(tiny / "train"), str(tiny / "valid"), str(tiny / "test"))
    index = scan(dirs)
    assert index.classes == ["Affenpinscher", "Afghan_hound", "Airedale_terrier"]
    assert [len(index.samples[s]) for s in ("train", "valid", "test")] == [9, 6, 6]
    assert {target for _, target in index.samples["train"]} == {0, 1, 2}


def test_partial_channels_and_missing_data_are_clear(tiny):
    with pytest.raises(DatasetLayoutError, match="channels for valid, test are missing"):
        find_split_dirs(None, str(tiny / "train"))
    with pytest.raises(DatasetLayoutError, match="no data"):
        find_split_dirs(None)
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        find_split_dirs(str(tiny / "nope"))
    (tiny.parent / "second").mkdir()
    shutil.copytree(tiny / "train", tiny.parent / "second" / "train")
    with pytest.raises(DatasetLayoutError, match="holds no train/valid/test"):
        find_split_dirs(str(tiny.parent))


def test_empty_class_and_mismatched_classes(tiny):
    (tiny / "valid" / "004.Akita").mkdir()
    with pytest.raises(DatasetLayoutError, match="empty class folder"):
        scan(find_split_dirs(str(tiny)))
    (tiny / "valid" / "004.Akita" / "a.jpg").write_bytes(
        (tiny / "train" / "001.Affenpinscher").iterdir().__next__().read_bytes()
    )
    with pytest.raises(DatasetLayoutError, match="class folders differ between train and valid"):
        scan(find_split_dirs(str(tiny)))


def test_undecodable_images_are_skipped_and_counted(tiny):
    bad = tiny / "train" / "001.Affenpinscher" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    index = scan(find_split_dirs(str(tiny)))
    dataset = ImageListDataset(index.samples["train"], presets.eval_preset(32))
    images, targets, bad_paths = collate_skipping_bad([dataset[i] for i in range(len(dataset))])
    assert images.shape == (9, 3, 32, 32)
    assert targets.dtype == torch.long and len(targets) == 9
    assert bad_paths == [str(bad)]
    tracker = BadImageTracker(max_fraction=0.2)
    tracker.add("train", bad_paths)
    tracker.add("train", bad_paths)  # seen again next epoch: counted once
    tracker.check("train", 10)
    assert tracker.to_dict()["skipped_images"] == {"train": 1}
    strict = BadImageTracker(max_fraction=0.05)
    strict.add("train", bad_paths)
    with pytest.raises(BadImagesError, match="1 of 10 images in train are undecodable"):
        strict.check("train", 10)


def test_eval_preset_output_shape():
    from PIL import Image

    tensor = presets.eval_preset(40)(Image.new("RGB", (80, 60), (10, 200, 30)))
    assert tensor.shape == (3, 40, 40)
    augmented = presets.train_preset(40, augment=True)(Image.new("RGB", (80, 60)))
    assert augmented.shape == (3, 40, 40)
