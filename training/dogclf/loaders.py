"""Data loaders of the training loop: seeded, with the same batches in every epoch whether the
backbone features are cached or not (EpochShuffleSampler), sharded by DistributedSampler under DDP."""

from __future__ import annotations

import argparse
import random

import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler, TensorDataset

from dogclf import data as data_module
from dogclf import distributed


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


class EpochShuffleSampler(Sampler[int]):
    """A permutation that depends on (seed, epoch) only, like DistributedSampler's set_epoch().

    The cached and uncached paths then see the same batches in every epoch, however many times a
    loader (with or without workers) creates its sampler iterator.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


def _train_sampler(dataset, seed: int) -> EpochShuffleSampler:
    return EpochShuffleSampler(len(dataset), seed)


def image_loader(
    dataset: data_module.ImageListDataset,
    args: argparse.Namespace,
    context: distributed.DistContext,
    *,
    shuffle: bool,
    seed: int,
) -> DataLoader:
    sampler: Sampler[int] | None
    if context.distributed:
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed)
    else:
        sampler = _train_sampler(dataset, seed) if shuffle else None
    return DataLoader(
        dataset,
        batch_size=args.batch_size,
        sampler=sampler,
        num_workers=args.num_workers,
        pin_memory=context.device.type == "cuda",
        persistent_workers=False,
        collate_fn=data_module.collate_skipping_bad,
        generator=torch.Generator().manual_seed(seed),
    )


def feature_loader(dataset: TensorDataset, batch_size: int, *, shuffle: bool, seed: int) -> DataLoader:
    # Features are already this rank's shard (extracted through a DistributedSampler).
    return DataLoader(
        dataset, batch_size=batch_size, sampler=_train_sampler(dataset, seed) if shuffle else None
    )
