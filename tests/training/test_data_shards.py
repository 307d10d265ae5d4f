"""Tar shard channels (what ingest writes) read to the same index as class folders."""

from __future__ import annotations

import tarfile

import pytest
import torch
from torch.utils.data import DataLoader, get_worker_info
from trainhelpers import write_tar_shards

from dogclf import presets
from dogclf.data import (
    ImageListDataset,
    TarMember,
    collate_skipping_bad,
    find_split_dirs,
    sample_name,
    scan,
)
from dogclf.layout import SPLITS, DatasetLayoutError
from tools.sample_data import write_sample_tree


@pytest.fixture
def tree(tmp_path):
    return write_sample_tree(
        tmp_path / "folders" / "dogImages",
        num_classes=3,
        train_per_class=4,
        valid_per_class=2,
        test_per_class=2,
        image_size=32,
    )


def named(index, split_dirs):
    return {
        split: [(sample_name(source, split_dirs[split]), target) for source, target in index.samples[split]]
        for split in SPLITS
    }


def test_shards_and_folders_give_the_same_samples_and_labels(tmp_path, tree):
    shard_dirs = write_tar_shards(tree, tmp_path / "shards", members_per_shard=5)
    assert len(list(shard_dirs["train"].glob("*.tar"))) == 3  # 12 images, 5 a shard
    folder_dirs = find_split_dirs(None, *(str(tree / split) for split in SPLITS))
    folders = scan(folder_dirs)
    shards = scan(shard_dirs)
    assert shards.classes == folders.classes == ["Affenpinscher", "Afghan_hound", "Airedale_terrier"]
    assert shards.summary.to_dict() == folders.summary.to_dict()
    assert named(shards, shard_dirs) == named(folders, folder_dirs)
    assert [len(shards.samples[split]) for split in SPLITS] == [12, 6, 6]
    assert all(isinstance(source, TarMember) for source, _ in shards.samples["train"])
    # The same pixels come out of both.
    transform = presets.eval_preset(32)
    from_shards = ImageListDataset(shards.samples["valid"], transform)
    from_folders = ImageListDataset(folders.samples["valid"], transform)
    for position in range(len(from_folders)):
        assert torch.equal(from_shards[position][0], from_folders[position][0])


def test_one_training_channel_holding_split_folders_of_shards(tmp_path, tree):
    write_tar_shards(tree, tmp_path / "training" / "dogImages", members_per_shard=4)
    split_dirs = find_split_dirs(str(tmp_path / "training"))
    assert split_dirs["train"] == tmp_path / "training" / "dogImages" / "train"
    assert [len(scan(split_dirs).samples[split]) for split in SPLITS] == [12, 6, 6]


def test_dataloader_workers_read_shards_with_their_own_handles(tmp_path, tree):
    shard_dirs = write_tar_shards(tree, tmp_path / "shards", members_per_shard=3)
    index = scan(shard_dirs)
    dataset = ImageListDataset(index.samples["train"], presets.eval_preset(32))
    dataset[0]  # the parent opens a handle first: the forked workers must not reuse it
    parent_handles = set(dataset._handles.values())
    assert parent_handles

    def check_worker_handles(worker_id: int) -> None:
        info = get_worker_info()
        assert info is not None and isinstance(info.dataset, ImageListDataset)
        worker_dataset = info.dataset
        worker_dataset[0]
        own = set(worker_dataset._handles.values())
        assert own and own.isdisjoint(parent_handles), (own, parent_handles)

    loader = DataLoader(
        dataset,
        batch_size=4,
        num_workers=2,
        collate_fn=collate_skipping_bad,
        worker_init_fn=check_worker_handles,
    )
    images, targets = [], []
    for batch_images, batch_targets, bad in loader:
        assert bad == []
        images.append(batch_images)
        targets.append(batch_targets)
    expected = [dataset[position] for position in range(len(dataset))]
    assert torch.equal(torch.cat(images), torch.stack([image for image, _, _ in expected]))
    assert torch.cat(targets).tolist() == [target for _, target, _ in expected]


def test_an_undecodable_member_is_skipped_and_named_by_shard_and_member(tmp_path, tree):
    bad = tree / "train" / "001.Affenpinscher" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    shard_dirs = write_tar_shards(tree, tmp_path / "shards", members_per_shard=100)
    index = scan(shard_dirs)
    dataset = ImageListDataset(index.samples["train"], presets.eval_preset(32))
    images, targets, bad_names = collate_skipping_bad([dataset[i] for i in range(len(dataset))])
    assert images.shape == (12, 3, 32, 32) and len(targets) == 12
    assert bad_names == [f"{shard_dirs['train'] / 'train-00000.tar'}:001.Affenpinscher/broken.jpg"]


def test_shards_next_to_class_folders_are_refused(tmp_path, tree):
    write_tar_shards(tree, tmp_path / "shards", members_per_shard=100)
    (tmp_path / "shards" / "train" / "train-00000.tar").rename(tree / "train" / "extra.tar")
    with pytest.raises(DatasetLayoutError, match="both tar shards and class folders"):
        scan(find_split_dirs(str(tree)))


def test_a_compressed_or_broken_shard_is_a_clear_error(tmp_path, tree):
    shard_dirs = write_tar_shards(tree, tmp_path / "shards", members_per_shard=100)
    compressed = shard_dirs["valid"] / "valid-00001.tar"
    with tarfile.open(compressed, "w:gz") as tar:
        tar.add(tree / "valid" / "001.Affenpinscher", arcname="001.Affenpinscher")
    with pytest.raises(DatasetLayoutError, match=r"valid-00001\.tar is not a readable uncompressed tar"):
        scan(shard_dirs)


def test_a_member_in_two_shards_is_refused(tmp_path, tree):
    shard_dirs = write_tar_shards(tree, tmp_path / "shards", members_per_shard=100)
    image = next((tree / "test" / "002.Afghan_hound").iterdir())
    with tarfile.open(shard_dirs["test"] / "test-00001.tar", "w") as tar:
        tar.add(image, arcname=f"002.Afghan_hound/{image.name}")
    with pytest.raises(DatasetLayoutError, match="appears twice in the test shards"):
        scan(shard_dirs)


def test_layout_errors_are_the_folder_ones(tmp_path, tree):
    """An empty class folder inside a shard and a class missing from a split, as for folders."""
    shard_dirs = write_tar_shards(tree, tmp_path / "shards", members_per_shard=100)
    with tarfile.open(shard_dirs["valid"] / "valid-00001.tar", "w") as tar:
        info = tarfile.TarInfo("004.Akita")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    with pytest.raises(DatasetLayoutError, match="empty class folder"):
        scan(shard_dirs)
