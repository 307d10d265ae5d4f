"""The features job's backbone pass: every split of a dataset through the frozen backbone in ONE loader.

Why one loader over train, valid and test (in that order) rather than one per split: each loader
starts its workers and waits for its first batch with the backbone idle, and finishes on a forward
with no decoding left to overlap; valid and test are a batch or two each, so on a small instance
those idle starts were a tenth of the job (bench/bench_backbone.py). With one loader the workers
decode the first valid batch while the backbone runs the last train batch. Rows come back split by
position (the loader keeps the sample order, bad images included), so each split's features are
exactly what a pass over that split alone gives.

Why uint8 batches: the workers decode, resize and crop (presets.EvalCropPreset) and ship uint8
pixels, a quarter of the float bytes, stacked straight into shared memory (default_collate does
that in a worker); the main process normalizes each batch at once into the channels_last layout the
convolutions run in (presets.normalize_batch), bit for bit what the per-image eval preset gives.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader, default_collate

from dogclf import data as data_module
from dogclf import distributed, presets
from dogclf import precision as precision_module
from dogclf.layout import SPLITS
from dogclf.model import FEATURE_DIM, FrozenBackboneClassifier


def collate_uint8(batch):
    """collate_skipping_bad for uint8 images: in a worker, default_collate stacks into shared memory,
    which the main process then receives without a copy."""
    good = [(image, target) for image, target, _ in batch if image is not None]
    bad = [name for image, _, name in batch if image is None]
    if not good:
        return torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.long), bad
    images = default_collate([image for image, _ in good])
    return images, torch.tensor([target for _, target in good], dtype=torch.long), bad


@dataclass
class _SplitRows:
    total: int
    seen: int = 0
    features: list[torch.Tensor] = field(default_factory=list)
    targets: list[torch.Tensor] = field(default_factory=list)


def extract_splits(
    model: FrozenBackboneClassifier,
    samples: dict[str, list[tuple[data_module.ImageSource, int]]],
    *,
    image_size: int,
    batch_size: int,
    num_workers: int,
    context: distributed.DistContext,
    tracker: data_module.BadImageTracker,
    precision: precision_module.Precision = precision_module.FP32,
    progress: Callable[[str, int], None] | None = None,
    worker_nice: int = 0,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(features, targets) of every split in ``samples``, in sample order, undecodable images skipped
    (added to ``tracker``, checked as each split completes). ``progress(split, images)`` follows each
    batch (bad images included). The model's weights should be in backbone_speed's layout."""
    order = [split for split in SPLITS if split in samples]
    every = [sample for split in order for sample in samples[split]]
    split_of = [split for split in order for _ in samples[split]]  # by position in the pass
    position_of = {str(source): position for position, (source, _) in enumerate(every)}
    rows = {split: _SplitRows(total=len(samples[split])) for split in order}
    dataset = data_module.ImageListDataset(every, presets.EvalCropPreset(crop_size=image_size))
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=context.device.type == "cuda",
        collate_fn=collate_uint8,
        worker_init_fn=functools.partial(_lower_priority, worker_nice) if worker_nice else None,
    )
    model.eval()
    start = 0
    with torch.inference_mode():
        for images, targets, bad in loader:
            size = targets.numel() + len(bad)
            skipped = {position_of[name] for name in bad}
            good_splits = [split_of[p] for p in range(start, start + size) if p not in skipped]
            if targets.numel():
                inputs = presets.normalize_batch(images.to(context.device, non_blocking=True))
                with precision_module.autocast(precision, context.device):
                    batch_features = model.features(inputs).float()
                for split, first, end in _runs(good_splits):
                    rows[split].features.append(batch_features[first:end])
                    rows[split].targets.append(targets[first:end].to(context.device))
            for split, first, end in _runs([split_of[p] for p in range(start, start + size)]):
                tracker.add(split, [name for name in bad if split_of[position_of[name]] == split])
                rows[split].seen += end - first
                if progress is not None:
                    progress(split, end - first)
                if rows[split].seen == rows[split].total:
                    tracker.check(split, rows[split].total)
            start += size
        return {split: _stacked(rows[split], context.device) for split in order}


def _lower_priority(niceness: int, _worker_id: int) -> None:
    os.nice(niceness)


def _runs(labels: list[str]) -> Iterator[tuple[str, int, int]]:
    """(label, first, end) of each run of equal consecutive labels."""
    first = 0
    for position in range(1, len(labels) + 1):
        if position == len(labels) or labels[position] != labels[first]:
            yield labels[first], first, position
            first = position


def _stacked(rows: _SplitRows, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    if not rows.features:
        return torch.empty(0, FEATURE_DIM, device=device), torch.empty(0, dtype=torch.long)
    return torch.cat(rows.features), torch.cat(rows.targets)
