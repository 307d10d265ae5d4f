"""The profiled job (train_model.py) from the features channel: the backbone once per image per pipeline.

Without augmentation the frozen backbone's output for an image is the same in every epoch and in every
job, and the features job (features.py) has already computed it for the whole dataset. Given that
archive as its ``features`` channel (the pipeline passes it next to the image channels), the profiled
job trains the head from those features and runs the full model only at the training steps at which
the Debugger hook saves activations:

- ``relu_input_steps`` reads them from the hook config (the job's DebugHookConfig or the in-script
  default, both dogclf.debugger.hook_config): relu_input is saved at the first MIN_RULE_STEPS TRAIN
  steps only, and never in EVAL/PREDICT. A config that saves it elsewhere (or none we can bound)
  keeps today's full forward at every step;
- those steps' batches are decoded from the image channels and go through the full model, so the
  hook records the backbone's ReLU inputs there, exactly as in the full-forward path; every other
  step, validation and test feed the saved features to the head;
- the hook is registered on ``FeaturesOrImages``, the same backbone and head under the same module
  names, whose forward takes either images (4-d) or features (2-d): smdebug advances its step in
  the top module's forward pre-hook, so losses, gradients (the head's, the only trainable
  parameters either way), weights and step numbers are the full-forward path's;
- batches are the full-forward path's (the same EpochShuffleSampler permutation over the same rows),
  and the head starts from the same seeded build_model, so the metrics equal that path's up to the
  float rounding between the two backbone passes (tests/training/test_train_model.py).

The archive must be this dataset's (same classes, and one feature row per decodable image) and this
run's (image size, weights): otherwise a FeaturesError (permanent, exit code 2). Where the rows
cannot be matched to the images (more undecodable images than features.json lists), or the job is
distributed, the job logs why and runs the full model at every step as before.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from dogclf import data as data_module
from dogclf import engine, feature_files, presets
from dogclf.loaders import EpochShuffleSampler, feature_loader
from dogclf.model import FrozenBackboneClassifier

RELU_INPUT_COLLECTION = "relu_input"
_TRAIN, _NOT_TRAIN = "train", ("eval", "predict")


class FeaturesOrImages(FrozenBackboneClassifier):
    """The classifier the hook is registered on: images (N, 3, H, W) run the full model, features
    (N, 512) the head alone. Shares ``backbone`` and ``head`` with the model it is made from."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(inputs if inputs.dim() == 2 else self.features(inputs))

    def _get_name(self) -> str:
        # smdebug prefixes weight and bias names with the registered module's class name: the trial
        # must hold the names the full-forward path saves (FrozenBackboneClassifier_backbone.bn1.bias).
        return FrozenBackboneClassifier.__name__


def _setting(parameters: dict[str, str], hook: dict[str, str], mode: str, key: str) -> str | None:
    """smdebug's precedence: the collection's mode key, its plain key, then the hook's (mode, plain)."""
    for source in (parameters, hook):
        for name in (f"{mode}.{key}", key):
            if name in source:
                return str(source[name])
    return None


def relu_input_steps(config_path: Path | None) -> int | None:
    """How many leading TRAIN steps save relu_input under this hook config: the steps that need the
    backbone. None when it may save relu_input at later steps or in EVAL/PREDICT (or cannot be read)."""
    if config_path is None:
        return None
    try:
        config = json.loads(Path(config_path).read_text())
        hook = dict(config.get("HookParameters") or {})
        collections = {
            entry["CollectionName"]: dict(entry.get("CollectionParameters") or {})
            for entry in config.get("CollectionConfigurations") or []
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if RELU_INPUT_COLLECTION not in collections:
        return 0
    parameters = collections[RELU_INPUT_COLLECTION]
    if any(
        _setting(parameters, hook, mode, "end_step") != "0" or _setting(parameters, hook, mode, "save_steps")
        for mode in _NOT_TRAIN
    ):
        return None
    end = _setting(parameters, hook, _TRAIN, "end_step")
    explicit = _setting(parameters, hook, _TRAIN, "save_steps")
    try:
        bound = int(end) if end is not None else None
        listed = [int(step) for step in explicit.split(",") if step.strip()] if explicit else []
    except ValueError:
        return None
    if bound is None:
        return None
    return max([bound, *(step + 1 for step in listed)])


def _image_key(source: str) -> str:
    """An image's name independent of where its channel is mounted: ``<shard>.tar:<member>`` or
    ``<class>/<file>`` (each job has its own channel folders)."""
    head, sep, member = source.rpartition(":")
    if sep and head.endswith(data_module.SHARD_SUFFIX):
        return f"{Path(head).name}:{member}"
    return "/".join(Path(source).parts[-2:])


def rows_to_samples(
    samples: Sequence[tuple[data_module.ImageSource, int]], skipped: list[str], rows: int
) -> list[int] | None:
    """Index of the image behind each feature row (features.py leaves undecodable images out), or None
    when they cannot be matched (features.json lists at most 100 skipped images per split)."""
    left_out = {_image_key(path) for path in skipped}
    kept = [i for i, (source, _) in enumerate(samples) if _image_key(str(source)) not in left_out]
    return kept if len(kept) == rows else None


class DebuggerStepsLoader:
    """The training batches: images for the job's first ``image_steps`` training steps, saved
    features after. Same permutation and batches as dogclf.loaders.feature_loader (fit calls set_epoch)."""

    def __init__(
        self,
        features: TensorDataset,
        images: data_module.ImageListDataset,
        rows: list[int],
        *,
        batch_size: int,
        seed: int,
        image_steps: int,
        num_workers: int,
    ) -> None:
        self.features, self.images, self.rows = features, images, rows
        self.batch_size, self.image_steps, self.num_workers = batch_size, image_steps, num_workers
        self.sampler = EpochShuffleSampler(len(features), seed)
        self.steps_done = 0
        self.backbone_images = 0  # images this job ran through the backbone

    def __len__(self) -> int:
        return math.ceil(len(self.features) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[str]]]:
        order = list(self.sampler)
        batches = [order[start : start + self.batch_size] for start in range(0, len(order), self.batch_size)]
        from_images = max(0, min(len(batches), self.image_steps - self.steps_done))
        image_batches = iter(self._image_loader(batches[:from_images])) if from_images else None
        features, targets = self.features.tensors
        for number, batch in enumerate(batches):
            self.steps_done += 1
            if image_batches is not None and number < from_images:
                inputs, image_targets, bad = next(image_batches)
                if bad or not torch.equal(image_targets, targets[batch]):
                    # features.py decoded these images; the same bytes must decode the same here.
                    raise feature_files.FeaturesError(
                        f"images {bad or 'of a batch'} do not match their saved features' rows"
                    )
                self.backbone_images += len(image_targets)
                yield inputs, image_targets, []
            else:
                index = torch.tensor(batch, dtype=torch.long)
                yield features[index], targets[index], []

    def _image_loader(self, batches: list[list[int]]) -> DataLoader:
        return DataLoader(
            self.images,
            batch_sampler=[[self.rows[row] for row in batch] for batch in batches],
            num_workers=self.num_workers,
            collate_fn=data_module.collate_skipping_bad,
        )


def wanted(args: argparse.Namespace, world_size: int, log: Callable[[str], None]) -> str | None:
    """The features location to train the head from, or None for the full forward at every step."""
    if not args.features_dir:
        return None
    if args.augment:
        log("features channel ignored: --augment true changes the backbone input every epoch")
        return None
    if world_size > 1:
        log("features channel ignored: a distributed profiled job runs the full model at every step")
        return None
    return str(args.features_dir)


class LoadersFromFeatures:
    """engine.main's loaders_factory for the profiled job given a features channel."""

    def __init__(self, location: str, hook_config: Callable[[], Path | None]) -> None:
        self.location, self.hook_config = location, hook_config

    def __call__(
        self, job: engine.Job, index: data_module.DatasetIndex, model: FrozenBackboneClassifier
    ) -> engine.Loaders:
        args = job.args
        features = feature_files.read_features(self.location)
        meta = features.meta
        feature_files.check_compatible(
            meta, image_size=args.image_size, weights=args.weights, source=self.location
        )
        if meta["classes"] != index.classes or meta["class_dirs"] != index.class_dirs:
            raise feature_files.FeaturesError(
                f"{self.location}: features of another dataset ({len(meta['classes'])} classes, this "
                f"job's images have {len(index.classes)})"
            )
        image_steps = relu_input_steps(self.hook_config())
        skipped = meta.get("skipped_paths", {}).get("train", [])
        rows = rows_to_samples(index.samples["train"], skipped, len(features.splits["train"][1]))
        for split in ("valid", "test"):
            if len(features.splits[split][1]) + meta.get("skipped_images", {}).get(split, 0) != len(
                index.samples[split]
            ):
                raise feature_files.FeaturesError(
                    f"{self.location}: {split} features do not match this job's {split} images"
                )
        if image_steps is None or rows is None:
            why = "relu_input at steps beyond the first ones" if image_steps is None else "unmatched rows"
            job.log(f"features channel unused ({why}): the full model runs forward at every step")
            return engine.build_loaders(job, index, model)
        tensors = {split: TensorDataset(*pair) for split, pair in features.splits.items()}
        train = DebuggerStepsLoader(
            tensors["train"],
            data_module.ImageListDataset(index.samples["train"], presets.eval_preset(args.image_size)),
            rows,
            batch_size=args.batch_size,
            seed=args.seed,
            image_steps=image_steps,
            num_workers=args.num_workers,
        )
        loaders: dict[str, Any] = {"train": train}
        for split in ("valid", "test"):
            loaders[split] = feature_loader(tensors[split], args.batch_size, shuffle=False, seed=args.seed)
        job.log(
            f"head trains from the features channel {self.location}; the full model runs at the first "
            f"{image_steps} training steps only (the hook's relu_input steps)"
        )
        source = {"source": self.location, **_key_fields(meta)}
        counts = dict(meta["counts"])

        def report() -> dict[str, Any]:
            images = sum(counts.values())
            return {
                "features_channel": source,
                "backbone_images": {
                    "forward_images": train.backbone_images,
                    "dataset_images": images,
                    "passes": round(train.backbone_images / max(images, 1), 4),
                    "image_steps": min(train.steps_done, train.image_steps),
                },
            }

        model_for_hook = FeaturesOrImages(model.backbone, len(index.classes), head=model.head)
        return engine.Loaders(loaders, model_for_hook, cache_features=False, report=report)


def _key_fields(meta: dict[str, Any]) -> dict[str, Any]:
    return {key: meta.get(key) for key in ("features_key", "dataset_id", "weights", "image_size")}
