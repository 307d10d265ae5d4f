"""The training core shared by hpo.py and train_model.py (shaped like torchvision's reference
classification script: get_args_parser, train_one_epoch, evaluate, main-style run()).

Feature caching: the backbone is frozen and in eval mode, so without augmentation its output for an
image never changes. Then each split goes through the backbone ONCE and the head trains on the
cached 512-d features for every epoch. ``--augment true`` switches back to a full forward pass per
batch per epoch (random crops/flips change the features).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Sampler, TensorDataset

from dogclf import data as data_module
from dogclf import distributed, metrics, presets, sm_env
from dogclf.model import ARCH, FrozenBackboneClassifier, build_model

PACKAGE_DIR = Path(__file__).resolve().parent
TRAINING_DIR = PACKAGE_DIR.parent


def get_args_parser(description: str) -> argparse.ArgumentParser:
    """Hyperparameter flags are spelled exactly like the hyperparameter names (the toolkit passes
    ``--<name> <value>``); paths default to the SageMaker environment variables."""
    parser = argparse.ArgumentParser(description=description)
    hp = parser.add_argument_group("hyperparameters")
    hp.add_argument("--learning_rate", type=float, default=1e-3)
    hp.add_argument("--batch_size", type=int, default=64)
    hp.add_argument("--epochs", type=int, default=5)
    hp.add_argument("--weights", default="imagenet", help="imagenet | none (random init) | <state_dict path>")
    hp.add_argument(
        "--augment", type=sm_env.str2bool, default=False, help="true: random crops/flips, no cache"
    )
    hp.add_argument(
        "--feature_cache",
        type=sm_env.str2bool,
        default=True,
        help="compute frozen-backbone features once per split (ignored with --augment true)",
    )
    hp.add_argument("--image_size", type=int, default=224)
    hp.add_argument("--num_workers", type=int, default=min(4, max(0, sm_env.num_cpus() - 1)))
    hp.add_argument("--seed", type=int, default=0)
    hp.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    hp.add_argument("--momentum", type=float, default=0.9, help="sgd only")
    hp.add_argument("--weight_decay", type=float, default=0.0)
    hp.add_argument("--max_bad_image_fraction", type=float, default=0.01)
    paths = parser.add_argument_group("paths (default: SageMaker environment)")
    paths.add_argument("--model_dir", default=sm_env.model_dir())
    paths.add_argument("--output_data_dir", default=sm_env.output_data_dir())
    paths.add_argument(
        "--data_dir", default=sm_env.channel("training"), help="folder holding train/valid/test"
    )
    paths.add_argument("--train_dir", default=sm_env.channel("train"))
    paths.add_argument("--valid_dir", default=sm_env.channel("valid"))
    paths.add_argument("--test_dir", default=sm_env.channel("test"))
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse, ignoring hyperparameters we do not know: tuning jobs add ``_tuning_objective_metric``
    and users may pass extras; failing the job on them would waste it."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"ignoring unknown arguments: {' '.join(unknown)}", flush=True)
    return args


class Callbacks:
    """Instrumentation points (Debugger hook, profiler); the defaults do nothing."""

    def on_model_ready(self, module: nn.Module, criterion: nn.Module) -> None:
        """``module`` is the module that runs forward/backward in the training loop."""

    def set_mode(self, mode: str) -> None:
        """ "train" or "eval"."""

    def on_step(self, phase: str, data_seconds: float, compute_seconds: float) -> None:
        pass

    def on_phase(self, phase: str, seconds: float) -> None:
        pass


def _autocast(device: torch.device):
    # bf16 autocast on GPU (no loss scaling needed); full precision on CPU.
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _unpack(batch) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    if len(batch) == 3:
        return batch[0], batch[1], batch[2]
    return batch[0], batch[1], []


def _step_count(loader: DataLoader, context: distributed.DistContext) -> int:
    """Steps per epoch, equal on every rank (DDP hangs if one rank takes an extra step)."""
    steps = len(loader)
    if context.distributed:
        tensor = torch.tensor([steps], device=context.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
        steps = int(tensor.item())
    return steps


def train_one_epoch(
    module: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    *,
    context: distributed.DistContext,
    tracker: data_module.BadImageTracker,
    callbacks: Callbacks,
    history: dict[str, list],
) -> dict[str, float]:
    module.train()
    callbacks.set_mode("train")
    steps = _step_count(loader, context)
    loss_sum, correct, count = 0.0, 0.0, 0.0
    iterator = iter(loader)
    for _ in range(steps):
        started = time.perf_counter()
        inputs, targets, bad = _unpack(next(iterator))
        tracker.add("train", bad)
        loaded = time.perf_counter()
        if targets.numel() == 0:
            continue
        inputs = inputs.to(context.device, non_blocking=True)
        targets = targets.to(context.device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with _autocast(context.device):
            logits = module(inputs)
        loss = criterion(logits.float(), targets)
        loss.backward()
        optimizer.step()
        batch_loss = loss.item()
        _record_loss(history, "train_step_loss", batch_loss)
        loss_sum += batch_loss * targets.numel()
        correct += (logits.argmax(dim=1) == targets).sum().item()
        count += targets.numel()
        callbacks.on_step("train", loaded - started, time.perf_counter() - loaded)
    loss_sum, correct, count = distributed.all_reduce_sum([loss_sum, correct, count], context)
    return {"loss": loss_sum / max(count, 1), "accuracy": correct / max(count, 1), "count": count}


@torch.no_grad()
def evaluate(
    module: nn.Module,
    criterion: nn.Module,
    loader: DataLoader,
    *,
    split: str,
    context: distributed.DistContext,
    tracker: data_module.BadImageTracker,
    callbacks: Callbacks,
    history: dict[str, list],
) -> dict[str, float]:
    module.eval()
    callbacks.set_mode("eval")
    loss_sum, correct, count = 0.0, 0.0, 0.0
    for batch in loader:
        started = time.perf_counter()
        inputs, targets, bad = _unpack(batch)
        tracker.add(split, bad)
        if targets.numel() == 0:
            continue
        inputs, targets = inputs.to(context.device), targets.to(context.device)
        with _autocast(context.device):
            logits = module(inputs)
        loss = criterion(logits.float(), targets)
        _record_loss(history, f"{split}_step_loss", loss.item())
        loss_sum += loss.item() * targets.numel()
        correct += (logits.argmax(dim=1) == targets).sum().item()
        count += targets.numel()
        callbacks.on_step(split, 0.0, time.perf_counter() - started)
    loss_sum, correct, count = distributed.all_reduce_sum([loss_sum, correct, count], context)
    return {"loss": loss_sum / max(count, 1), "accuracy": correct / max(count, 1), "count": count}


@torch.no_grad()
def extract_features(
    model: FrozenBackboneClassifier,
    loader: DataLoader,
    *,
    split: str,
    context: distributed.DistContext,
    tracker: data_module.BadImageTracker,
    callbacks: Callbacks,
) -> TensorDataset:
    """One backbone pass over a split -> (features, targets) kept in memory (512 floats per image)."""
    model.eval()
    features, targets_all = [], []
    iterator = iter(loader)
    while True:
        started = time.perf_counter()
        try:
            inputs, targets, bad = _unpack(next(iterator))
        except StopIteration:
            break
        tracker.add(split, bad)
        loaded = time.perf_counter()
        if targets.numel() == 0:
            continue
        with _autocast(context.device):
            batch_features = model.features(inputs.to(context.device, non_blocking=True))
        features.append(batch_features.float())
        targets_all.append(targets.to(context.device))
        callbacks.on_step(f"features:{split}", loaded - started, time.perf_counter() - loaded)
    if not features:
        return TensorDataset(torch.empty(0, 512, device=context.device), torch.empty(0, dtype=torch.long))
    return TensorDataset(torch.cat(features), torch.cat(targets_all))


def _record_loss(history: dict[str, list], key: str, loss: float) -> None:
    """Per-step losses as [global step, loss]; train and eval steps share one step axis (like smdebug)."""
    step = history.setdefault("steps_seen", [0])
    history[key].append([step[0], loss])
    step[0] += 1


def _seed_everything(seed: int) -> None:
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


def _image_loader(
    dataset: data_module.ImageListDataset,
    args: argparse.Namespace,
    context: distributed.DistContext,
    *,
    shuffle: bool,
    seed: int,
) -> DataLoader:
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


def _feature_loader(dataset: TensorDataset, batch_size: int, *, shuffle: bool, seed: int) -> DataLoader:
    # Features are already this rank's shard (extracted through a DistributedSampler).
    return DataLoader(
        dataset, batch_size=batch_size, sampler=_train_sampler(dataset, seed) if shuffle else None
    )


def hyperparameters(args: argparse.Namespace) -> dict[str, Any]:
    keys = (
        "learning_rate",
        "batch_size",
        "epochs",
        "weights",
        "augment",
        "feature_cache",
        "image_size",
        "seed",
    )
    keys += ("optimizer",)
    keys += ("momentum", "weight_decay", "num_workers")
    return {key: getattr(args, key) for key in keys}


def run(args: argparse.Namespace, *, entry_point: str, callbacks: Callbacks | None = None) -> dict[str, Any]:
    """Train, evaluate, and (rank 0) write artifacts. Returns the metrics dict written to metrics.json."""
    callbacks = callbacks or Callbacks()
    started = time.perf_counter()
    context = distributed.init_from_env()
    try:
        return _run(args, entry_point=entry_point, callbacks=callbacks, context=context, started=started)
    finally:
        distributed.shutdown(context)


def _run(
    args: argparse.Namespace,
    *,
    entry_point: str,
    callbacks: Callbacks,
    context: distributed.DistContext,
    started: float,
) -> dict[str, Any]:
    _seed_everything(args.seed)
    log = print if context.is_main else (lambda *a, **k: None)
    split_dirs = data_module.find_split_dirs(args.data_dir, args.train_dir, args.valid_dir, args.test_dir)
    index = data_module.scan(split_dirs)
    counts = {split: len(samples) for split, samples in index.samples.items()}
    log(
        f"dataset: {len(index.classes)} classes, images {counts}, from {split_dirs['train'].parent}",
        flush=True,
    )
    log(
        f"rank {context.rank}/{context.world_size} on {context.device}; hyperparameters "
        f"{json.dumps(hyperparameters(args))}",
        flush=True,
    )

    model = build_model(len(index.classes), args.weights).to(context.device)
    criterion = nn.CrossEntropyLoss()
    tracker = data_module.BadImageTracker(max_fraction=args.max_bad_image_fraction)
    cache_features = args.feature_cache and not args.augment
    if args.feature_cache and args.augment:
        log("feature cache off: --augment true changes the backbone input every epoch", flush=True)
    eval_transform = presets.eval_preset(args.image_size)
    datasets = {
        "train": data_module.ImageListDataset(
            index.samples["train"], presets.train_preset(args.image_size, args.augment)
        ),
        "valid": data_module.ImageListDataset(index.samples["valid"], eval_transform),
        "test": data_module.ImageListDataset(index.samples["test"], eval_transform),
    }
    image_loaders = {
        split: _image_loader(
            dataset, args, context, shuffle=split == "train" and not cache_features, seed=args.seed
        )
        for split, dataset in datasets.items()
    }

    timings: dict[str, float] = {}
    if cache_features:
        phase_started = time.perf_counter()
        cached = {
            split: extract_features(
                model, loader, split=split, context=context, tracker=tracker, callbacks=callbacks
            )
            for split, loader in image_loaders.items()
        }
        timings["feature_extraction_seconds"] = time.perf_counter() - phase_started
        callbacks.on_phase("feature_extraction", timings["feature_extraction_seconds"])
        log(f"cached backbone features in {timings['feature_extraction_seconds']:.2f}s", flush=True)
        loaders = {
            split: _feature_loader(dataset, args.batch_size, shuffle=split == "train", seed=args.seed)
            for split, dataset in cached.items()
        }
        trained_module: nn.Module = model.head
    else:
        loaders = image_loaders
        trained_module = model
    for split in ("train", "valid", "test"):
        tracker.check(split, counts[split])

    callbacks.on_model_ready(trained_module, criterion)
    module = trained_module
    if context.distributed:
        device_ids = [context.device.index] if context.device.type == "cuda" else None
        module = DistributedDataParallel(trained_module, device_ids=device_ids)
    parameters = [p for p in model.parameters() if p.requires_grad]
    if args.optimizer == "adam":
        optimizer = torch.optim.Adam(parameters, lr=args.learning_rate, weight_decay=args.weight_decay)
    else:
        optimizer = torch.optim.SGD(
            parameters, lr=args.learning_rate, momentum=args.momentum, weight_decay=args.weight_decay
        )

    history: dict[str, list] = {
        "train_step_loss": [],
        "valid_step_loss": [],
        "test_step_loss": [],
        "epochs": [],
    }
    best_valid = -math.inf
    for epoch in range(args.epochs):
        if isinstance(loaders["train"].sampler, DistributedSampler | EpochShuffleSampler):
            loaders["train"].sampler.set_epoch(epoch)
        epoch_started = time.perf_counter()
        train_stats = train_one_epoch(
            module,
            criterion,
            optimizer,
            loaders["train"],
            context=context,
            tracker=tracker,
            callbacks=callbacks,
            history=history,
        )
        valid_stats = evaluate(
            module,
            criterion,
            loaders["valid"],
            split="valid",
            context=context,
            tracker=tracker,
            callbacks=callbacks,
            history=history,
        )
        epoch_seconds = time.perf_counter() - epoch_started
        for split in ("train", "valid"):  # without the cache, bad images surface during epochs
            tracker.check(split, counts[split])
        best_valid = max(best_valid, valid_stats["accuracy"])
        history["epochs"].append(
            {"epoch": epoch + 1, "train": train_stats, "valid": valid_stats, "seconds": epoch_seconds}
        )
        log(
            f"epoch {epoch + 1}/{args.epochs}: "
            f"train loss {train_stats['loss']:.4f} acc {train_stats['accuracy']:.4f}"
            f" | valid loss {valid_stats['loss']:.4f} acc {valid_stats['accuracy']:.4f}"
            f" | {epoch_seconds:.2f}s",
            flush=True,
        )
        if context.is_main:
            metrics.emit("train:loss", train_stats["loss"])
            metrics.emit("train:accuracy", train_stats["accuracy"])
            metrics.emit("valid:loss", valid_stats["loss"])
            metrics.emit("valid:accuracy", valid_stats["accuracy"])
            metrics.emit("epoch:seconds", epoch_seconds)

    test_stats = evaluate(
        module,
        criterion,
        loaders["test"],
        split="test",
        context=context,
        tracker=tracker,
        callbacks=callbacks,
        history=history,
    )
    tracker.check("test", counts["test"])
    if context.is_main:
        metrics.emit("test:loss", test_stats["loss"])
        metrics.emit("test:accuracy", test_stats["accuracy"])
    timings["total_seconds"] = time.perf_counter() - started
    result: dict[str, Any] = {
        "entry_point": entry_point,
        "arch": ARCH,
        "feature_cache": cache_features,
        "world_size": context.world_size,
        "rank": context.rank,
        "device": str(context.device),
        "hyperparameters": hyperparameters(args),
        "classes": index.classes,
        "dataset": index.summary.to_dict(),
        "final": {
            "train:loss": history["epochs"][-1]["train"]["loss"] if history["epochs"] else None,
            "valid:loss": history["epochs"][-1]["valid"]["loss"] if history["epochs"] else None,
            "valid:accuracy": history["epochs"][-1]["valid"]["accuracy"] if history["epochs"] else None,
            "test:loss": test_stats["loss"],
            "test:accuracy": test_stats["accuracy"],
        },
        "history": history,
        "timings": timings,
        **tracker.to_dict(),
    }
    if context.is_main:
        save_artifacts(model, index.classes, index.class_dirs, args, Path(args.model_dir))
        output_dir = Path(args.output_data_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "metrics.json").write_text(json.dumps(result, indent=2))
        log(
            f"wrote model artifacts to {args.model_dir} and metrics to {output_dir / 'metrics.json'}",
            flush=True,
        )
    distributed.barrier(context)
    return result


def save_artifacts(
    model: FrozenBackboneClassifier,
    classes: list[str],
    class_dirs: list[str],
    args: argparse.Namespace,
    model_dir: Path,
) -> None:
    """model.pth + classes.json + model_meta.json + code/ (inference.py and dogclf/), which is what
    the PyTorch serving container needs to load model.tar.gz as is."""
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), model_dir / "model.pth")
    (model_dir / "classes.json").write_text(json.dumps(classes, indent=2))
    meta = {
        "arch": ARCH,
        "image_size": args.image_size,
        "resize_size": presets.resize_size_for(args.image_size),
        "num_classes": len(classes),
        "class_dirs": class_dirs,
        "hyperparameters": hyperparameters(args),
    }
    (model_dir / "model_meta.json").write_text(json.dumps(meta, indent=2))
    copy_serving_code(model_dir / "code")


def copy_serving_code(code_dir: Path, files: Iterable[str] = ("inference.py",)) -> None:
    code_dir.mkdir(parents=True, exist_ok=True)
    for name in files:
        shutil.copy2(TRAINING_DIR / name, code_dir / name)
    target = code_dir / "dogclf"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(PACKAGE_DIR, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
