"""The training core shared by hpo.py and train_model.py, shaped like torchvision's reference
classification script: ``main`` built from small steps (load_data, build_loaders, build_optimizer,
fit, summarize, write_outputs). Its parts live by concern: the flags in flags.py (get_args_parser),
the data loaders in loaders.py, the loop in loop.py (train_one_epoch, evaluate, extract_features)
and the packaging for serving in artifacts.py (save_artifacts).

Feature caching: the backbone is frozen and in eval mode, so without augmentation its output for an
image never changes. Then each split goes through the backbone ONCE and the head trains on the
cached 512-d features for every epoch. ``--augment true`` switches back to a full forward pass per
batch per epoch (random crops/flips change the features). train_model.py, the profiled job, turns
the cache off: the profiler must measure the real workload and the Debugger hook see the backbone.

Features once per dataset: features.py (its own training job) runs dogclf/feature_pass.py over every
split once and saves the result (dogclf/feature_files.py). A tuning trial given that artifact as the
``features`` channel (``--features_dir``) never builds the backbone: hpo.py hands it to
dogclf/head_trial.py, which feeds the saved features to the same ``fit`` (feature loaders, metric
lines, metrics.json) as the in-job cache above.

Precision per device (precision.py): fp16 + GradScaler before Ampere (T4), bf16 from Ampere on, fp32
on CPU.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from dogclf import data as data_module
from dogclf import distributed, metrics, presets
from dogclf import precision as precision_module
from dogclf.artifacts import save_artifacts
from dogclf.contract import METRICS_FILE
from dogclf.flags import hyperparameters
from dogclf.loaders import EpochShuffleSampler, feature_loader, image_loader, seed_everything
from dogclf.loop import Callbacks, evaluate, extract_features, train_one_epoch
from dogclf.model import ARCH, FrozenBackboneClassifier, build_model
from dogclf.precision import Precision


@dataclass
class Job:
    """What the steps of ``main`` share: arguments, process group, instrumentation and the log."""

    args: argparse.Namespace
    entry_point: str
    context: distributed.DistContext
    callbacks: Callbacks
    precision: Precision
    tracker: data_module.BadImageTracker
    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)

    def log(self, message: str) -> None:
        if self.context.is_main:
            print(message, flush=True)


@dataclass
class Loaders:
    loaders: dict[str, Any]  # split -> DataLoader (or a loader-like iterable with len() and .sampler)
    trained_module: nn.Module  # what runs forward/backward: the head on cached features, else the model
    cache_features: bool
    report: Callable[[], dict[str, Any]] = dict  # extra metrics.json entries, read after training


LoadersFactory = Callable[[Job, data_module.DatasetIndex, FrozenBackboneClassifier], Loaders]


def main(
    args: argparse.Namespace,
    *,
    entry_point: str,
    callbacks: Callbacks | None = None,
    loaders_factory: LoadersFactory | None = None,
) -> dict[str, Any]:
    """Train, evaluate and (rank 0) save: load data, build loaders, optimizer, fit, save artifacts.

    ``loaders_factory`` replaces build_loaders (train_model.py's profiled_features). Returns the
    metrics dict written to metrics.json."""
    context = distributed.init_from_env()
    try:
        seed_everything(args.seed)
        job = Job(
            args=args,
            entry_point=entry_point,
            context=context,
            callbacks=callbacks or Callbacks(),
            precision=precision_module.for_device(context.device),
            tracker=data_module.BadImageTracker(max_fraction=args.max_bad_image_fraction),
        )
        index = load_data(job)
        job.callbacks.on_dataset(_counts(index), args.batch_size, args.epochs)
        model = build_model(len(index.classes), args.weights).to(context.device)
        loaders = (loaders_factory or build_loaders)(job, index, model)
        optimizer = build_optimizer(args, model)
        history, test_stats = fit(job, model, loaders, optimizer, counts=_counts(index))
        result = summarize(job, index.summary.to_dict(), loaders.cache_features, history, test_stats)
        result.update(loaders.report())
        if context.is_main:
            write_outputs(job, model, index, result)
        distributed.barrier(context)
        return result
    finally:
        distributed.shutdown(context)


def _counts(index: data_module.DatasetIndex) -> dict[str, int]:
    return {split: len(samples) for split, samples in index.samples.items()}


def load_data(job: Job) -> data_module.DatasetIndex:
    args = job.args
    log_manifest(job)
    split_dirs = data_module.find_split_dirs(args.data_dir, args.train_dir, args.valid_dir, args.test_dir)
    index = data_module.scan(split_dirs)
    job.log(
        f"dataset: {len(index.classes)} classes, images {_counts(index)}, from {split_dirs['train'].parent}"
    )
    job.log(
        f"rank {job.context.rank}/{job.context.world_size} on {job.context.device} ({job.precision.name}); "
        f"hyperparameters {json.dumps(hyperparameters(args))}"
    )
    return index


def log_manifest(job: Job) -> None:
    if job.args.dataset_manifest:
        job.log(f"dataset manifest: {job.args.dataset_manifest}")


def build_loaders(job: Job, index: data_module.DatasetIndex, model: FrozenBackboneClassifier) -> Loaders:
    """Image loaders; with the feature cache, one backbone pass per split and loaders over features."""
    args, context = job.args, job.context
    cache_features = args.feature_cache and not args.augment
    if args.feature_cache and args.augment:
        job.log("feature cache off: --augment true changes the backbone input every epoch")
    eval_transform = presets.eval_preset(args.image_size)
    datasets = {
        "train": data_module.ImageListDataset(
            index.samples["train"], presets.train_preset(args.image_size, args.augment)
        ),
        "valid": data_module.ImageListDataset(index.samples["valid"], eval_transform),
        "test": data_module.ImageListDataset(index.samples["test"], eval_transform),
    }
    image_loaders = {
        split: image_loader(
            dataset, args, context, shuffle=split == "train" and not cache_features, seed=args.seed
        )
        for split, dataset in datasets.items()
    }
    if not cache_features:
        return Loaders(image_loaders, model, cache_features=False)
    phase_started = time.perf_counter()
    cached = {
        split: extract_features(
            model,
            loader,
            split=split,
            context=context,
            tracker=job.tracker,
            callbacks=job.callbacks,
            precision=job.precision,
        )
        for split, loader in image_loaders.items()
    }
    seconds = job.timings["feature_extraction_seconds"] = time.perf_counter() - phase_started
    job.callbacks.on_phase("feature_extraction", seconds)
    job.log(f"cached backbone features in {seconds:.2f}s")
    for split, samples in index.samples.items():  # bad images surface while extracting
        job.tracker.check(split, len(samples))
    loaders = {
        split: feature_loader(dataset, args.batch_size, shuffle=split == "train", seed=args.seed)
        for split, dataset in cached.items()
    }
    return Loaders(loaders, model.head, cache_features=True)


def build_optimizer(args: argparse.Namespace, model: nn.Module) -> torch.optim.Optimizer:
    parameters = [p for p in model.parameters() if p.requires_grad]
    if args.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=args.learning_rate, weight_decay=args.weight_decay)
    return torch.optim.SGD(
        parameters, lr=args.learning_rate, momentum=args.momentum, weight_decay=args.weight_decay
    )


def _new_history() -> dict[str, list]:
    return {"train_step_loss": [], "valid_step_loss": [], "test_step_loss": [], "epochs": []}


def fit(
    job: Job,
    model: nn.Module,
    loaders: Loaders,
    optimizer: torch.optim.Optimizer,
    *,
    counts: dict[str, int],
) -> tuple[dict[str, list], dict[str, float]]:
    """The epochs (train, validate, metric lines), then the test split. Returns (history, test stats)."""
    args, context, callbacks = job.args, job.context, job.callbacks
    criterion = nn.CrossEntropyLoss()
    callbacks.on_model_ready(loaders.trained_module, criterion)
    module = loaders.trained_module
    if context.distributed:
        device_ids = [context.device.index] if context.device.type == "cuda" else None
        module = DistributedDataParallel(module, device_ids=device_ids)
    scaler = precision_module.grad_scaler(job.precision, context.device)
    history = _new_history()
    train_loader = loaders.loaders["train"]

    def run_evaluation(split: str, epoch: int) -> dict[str, float]:
        return evaluate(
            module,
            criterion,
            loaders.loaders[split],
            split=split,
            context=context,
            tracker=job.tracker,
            callbacks=callbacks,
            history=history,
            precision=job.precision,
            epoch=epoch,
        )

    for epoch in range(args.epochs):
        if isinstance(train_loader.sampler, DistributedSampler | EpochShuffleSampler):
            train_loader.sampler.set_epoch(epoch)
        epoch_started = time.perf_counter()
        train_stats = train_one_epoch(
            module,
            criterion,
            optimizer,
            train_loader,
            context=context,
            tracker=job.tracker,
            callbacks=callbacks,
            history=history,
            precision=job.precision,
            scaler=scaler,
            epoch=epoch,
        )
        valid_stats = run_evaluation("valid", epoch)
        epoch_seconds = time.perf_counter() - epoch_started
        for split in ("train", "valid"):  # without the cache, bad images surface during epochs
            job.tracker.check(split, counts[split])
        history["epochs"].append(
            {"epoch": epoch + 1, "train": train_stats, "valid": valid_stats, "seconds": epoch_seconds}
        )
        job.log(
            f"epoch {epoch + 1}/{args.epochs}: "
            f"train loss {train_stats['loss']:.4f} acc {train_stats['accuracy']:.4f}"
            f" | valid loss {valid_stats['loss']:.4f} acc {valid_stats['accuracy']:.4f}"
            f" | {epoch_seconds:.2f}s"
        )
        if context.is_main:
            metrics.emit("train:loss", train_stats["loss"])
            metrics.emit("train:accuracy", train_stats["accuracy"])
            metrics.emit("valid:loss", valid_stats["loss"])
            metrics.emit("valid:accuracy", valid_stats["accuracy"])
            metrics.emit("epoch:seconds", epoch_seconds)
    test_stats = run_evaluation("test", args.epochs - 1)
    job.tracker.check("test", counts["test"])
    if context.is_main:
        metrics.emit("test:loss", test_stats["loss"])
        metrics.emit("test:accuracy", test_stats["accuracy"])
    return history, test_stats


def summarize(
    job: Job,
    dataset: dict[str, Any],
    cache_features: bool,
    history: dict[str, list],
    test_stats: dict[str, float],
) -> dict[str, Any]:
    """metrics.json's content; ``dataset`` is the layout summary (LayoutSummary.to_dict())."""
    job.timings["total_seconds"] = time.perf_counter() - job.started
    last = history["epochs"][-1] if history["epochs"] else None
    return {
        "entry_point": job.entry_point,
        "arch": ARCH,
        "feature_cache": cache_features,
        "precision": job.precision.name,
        "world_size": job.context.world_size,
        "rank": job.context.rank,
        "device": str(job.context.device),
        "hyperparameters": hyperparameters(job.args),
        "classes": dataset["classes"],
        "dataset": dataset,
        "final": {
            "train:loss": last["train"]["loss"] if last else None,
            "valid:loss": last["valid"]["loss"] if last else None,
            "valid:accuracy": last["valid"]["accuracy"] if last else None,
            "test:loss": test_stats["loss"],
            "test:accuracy": test_stats["accuracy"],
        },
        "history": history,
        "timings": job.timings,
        **job.tracker.to_dict(),
    }


def write_outputs(
    job: Job, model: FrozenBackboneClassifier, index: data_module.DatasetIndex, result: dict[str, Any]
) -> None:
    args = job.args
    save_artifacts(model, index.classes, index.class_dirs, args, Path(args.model_dir))
    output_dir = Path(args.output_data_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / METRICS_FILE).write_text(json.dumps(result, indent=2))
    job.log(f"wrote model artifacts to {args.model_dir} and metrics to {output_dir / METRICS_FILE}")
