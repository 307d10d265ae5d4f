"""The training core shared by hpo.py and train_model.py, shaped like torchvision's reference
classification script: get_args_parser, train_one_epoch, evaluate, extract_features, and ``main``
built from small steps (load_data, build_loaders, build_optimizer, fit, write_outputs).

Feature caching: the backbone is frozen and in eval mode, so without augmentation its output for an
image never changes. Then each split goes through the backbone ONCE and the head trains on the
cached 512-d features for every epoch. ``--augment true`` switches back to a full forward pass per
batch per epoch (random crops/flips change the features). train_model.py, the profiled job, turns
the cache off: the profiler must measure the real workload and the Debugger hook see the backbone.

Features once per dataset: features.py (its own training job) runs ``extract_features`` over every
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
import random
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Sampler, TensorDataset

from dogclf import backbone_speed, distributed, metrics, presets, sm_env
from dogclf import data as data_module
from dogclf import precision as precision_module
from dogclf.contract import FEATURES_CHANNEL, METRICS_FILE
from dogclf.model import ARCH, FEATURE_DIM, FrozenBackboneClassifier, build_model
from dogclf.precision import Precision

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
    hp.add_argument(
        "--dataset_manifest",
        default="",
        help="S3 URI of the dataset's manifest.json (the pipeline passes it so later stages find the "
        "dataset; logged only)",
    )
    paths = parser.add_argument_group("paths (default: SageMaker environment)")
    paths.add_argument("--model_dir", default=sm_env.model_dir())
    paths.add_argument("--output_data_dir", default=sm_env.output_data_dir())
    add_image_channels(paths)
    paths.add_argument(
        "--features_dir",
        default=sm_env.channel(FEATURES_CHANNEL),
        help="backbone features written by features.py (its model.tar.gz, or the folder it unpacks to): "
        "hpo.py then trains the head only (see dogclf/head_trial.py)",
    )
    return parser


def add_image_channels(group: argparse._ArgumentGroup) -> None:
    """--data_dir (one ``training`` channel) or --train_dir/--valid_dir/--test_dir (one per split)."""
    group.add_argument(
        "--data_dir", default=sm_env.channel("training"), help="folder holding train/valid/test"
    )
    group.add_argument("--train_dir", default=sm_env.channel("train"))
    group.add_argument("--valid_dir", default=sm_env.channel("valid"))
    group.add_argument("--test_dir", default=sm_env.channel("test"))


def has_image_channels(args: argparse.Namespace) -> bool:
    return any((args.data_dir, args.train_dir, args.valid_dir, args.test_dir))


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse, ignoring hyperparameters we do not know: tuning jobs add ``_tuning_objective_metric``
    and users may pass extras; failing the job on them would waste it."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"ignoring unknown arguments: {' '.join(unknown)}", flush=True)
    return args


class Callbacks:
    """Instrumentation points (Debugger hook, profiler); the defaults do nothing."""

    def on_dataset(self, counts: dict[str, int], batch_size: int, epochs: int) -> None:
        """Images per split, known before the model is built (the Debugger hook sizes itself on it)."""

    def on_model_ready(self, module: nn.Module, criterion: nn.Module) -> None:
        """``module`` is the module that runs forward/backward in the training loop."""

    def set_mode(self, mode: str) -> None:
        """The split about to run: "train", "valid" or "test"."""

    def on_scaled_backward(self, loss_scale: float) -> None:
        """fp16 only: the gradients of this step's backward pass are multiplied by ``loss_scale``."""

    def on_step(self, phase: str, data_seconds: float, compute_seconds: float) -> None:
        pass

    def on_phase(self, phase: str, seconds: float) -> None:
        pass


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
    precision: Precision = precision_module.FP32,
    scaler: torch.amp.GradScaler | None = None,
    epoch: int = 0,
) -> dict[str, float]:
    module.train()
    callbacks.set_mode("train")
    steps = _step_count(loader, context)
    loss_sum, correct, count = 0.0, 0.0, 0.0
    iterator = iter(loader)
    for step in range(steps):
        started = time.perf_counter()
        inputs, targets, bad = _unpack(next(iterator))
        tracker.add("train", bad)
        loaded = time.perf_counter()
        if targets.numel() == 0:
            continue
        inputs = inputs.to(context.device, non_blocking=True)
        targets = targets.to(context.device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with precision_module.autocast(precision, context.device):
            logits = module(inputs)
        loss = criterion(logits.float(), targets)
        if scaler is not None and scaler.is_enabled():
            # fp16: scale the loss so small gradients survive, unscale before the step (skips inf/NaN).
            scaler.scale(loss).backward()
            callbacks.on_scaled_backward(scaler.get_scale())
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        batch_loss = loss.item()
        _record_loss(history, "train_step_loss", epoch + (step + 1) / steps, batch_loss)
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
    precision: Precision = precision_module.FP32,
    epoch: int = 0,
) -> dict[str, float]:
    module.eval()
    callbacks.set_mode(split)
    loss_sum, correct, count = 0.0, 0.0, 0.0
    steps = max(len(loader), 1)
    for step, batch in enumerate(loader):
        started = time.perf_counter()
        inputs, targets, bad = _unpack(batch)
        tracker.add(split, bad)
        if targets.numel() == 0:
            continue
        inputs, targets = inputs.to(context.device), targets.to(context.device)
        with precision_module.autocast(precision, context.device):
            logits = module(inputs)
        loss = criterion(logits.float(), targets)
        _record_loss(history, f"{split}_step_loss", epoch + (step + 1) / steps, loss.item())
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
    precision: Precision = precision_module.FP32,
    progress: Callable[[int], None] | None = None,
    fast_layout: bool = False,
) -> TensorDataset:
    """One backbone pass over a split -> (features, targets) kept in memory (512 floats per image).

    ``progress`` is called after each batch with the number of images it held (bad ones included).
    ``fast_layout``: the model was put in backbone_speed's memory format; the inputs follow it."""
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
            if progress is not None:
                progress(len(bad))
            continue
        if fast_layout:
            inputs = backbone_speed.fast_input(inputs, context.device)
        else:
            inputs = inputs.to(context.device, non_blocking=True)
        with precision_module.autocast(precision, context.device):
            batch_features = model.features(inputs)
        features.append(batch_features.float())
        targets_all.append(targets.to(context.device))
        callbacks.on_step(f"features:{split}", loaded - started, time.perf_counter() - loaded)
        if progress is not None:
            progress(targets.numel() + len(bad))
    if not features:
        return TensorDataset(
            torch.empty(0, FEATURE_DIM, device=context.device), torch.empty(0, dtype=torch.long)
        )
    return TensorDataset(torch.cat(features), torch.cat(targets_all))


def _record_loss(history: dict[str, list], key: str, epoch_position: float, loss: float) -> None:
    """Per-step losses as [position in epochs, loss]: step i of n in epoch e sits at e + (i + 1) / n,
    so train and validation losses share one x axis in loss.png."""
    history[key].append([round(epoch_position, 6), loss])


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


HYPERPARAMETER_KEYS: tuple[str, ...] = (
    "learning_rate",
    "batch_size",
    "epochs",
    "weights",
    "augment",
    "feature_cache",
    "image_size",
    "seed",
    "optimizer",
    "momentum",
    "weight_decay",
    "num_workers",
)


def hyperparameters(args: argparse.Namespace) -> dict[str, Any]:
    return {key: getattr(args, key) for key in HYPERPARAMETER_KEYS}


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
