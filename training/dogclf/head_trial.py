"""A tuning trial from a features channel: only the head trains, on the features features.py saved.

hpo.py asks ``features_source`` where to train from. With a features channel (``--features_dir``,
default SM_CHANNEL_FEATURES) and no augmentation, ``run`` trains the head from it:
- the ResNet18 backbone is never built and its weights never loaded (a trial then costs seconds);
- features.json must match the trial: same ``image_size`` and ``weights``, else a FeaturesError;
- training and evaluation are engine.fit over dogclf.loaders.feature_loader, which is what the in-job cache
  does after its own backbone pass. The head starts from the features job's head_init.pt when the
  trial's --seed is the features job's (the pipeline uses one seed), which is the head the in-job path
  builds for that seed: the same features, seed and hyperparameters give the same metric lines and
  metrics.json. Another seed gets model.build_head(seed): deterministic, but not the in-job head.
``--augment true`` needs images: with image channels the features are ignored (logged), without them
it is a FeaturesError.

model_dir (model.tar.gz) of such a trial holds no deployable model; trials are never deployed, only
the profiled job's model is:
- ``head.pth`` (HEAD_FILE): the head's state_dict under the keys it has inside
  FrozenBackboneClassifier (``head.1.weight``, ...), so ``load_state_dict(..., strict=False)`` of a
  full model takes it; no backbone weights. Its name differs from model.pth on purpose: nothing can
  mistake it for a full model;
- ``classes.json``; ``model_meta.json`` as artifacts.save_artifacts writes it, plus ``"head_only": true``
  and ``features`` (the key, dataset id, weights and image size the head was trained on). No code/.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

from dogclf import data as data_module
from dogclf import distributed, engine, feature_files, flags, loop, presets
from dogclf import precision as precision_module
from dogclf.contract import FEATURES_HEAD_INIT_FILE, METRICS_FILE
from dogclf.loaders import feature_loader, seed_everything
from dogclf.model import ARCH, build_head

HEAD_FILE = "head.pth"
# What metrics.json and model_meta.json repeat from features.json.
_FEATURES_FIELDS = (
    "features_key",
    "dataset_id",
    "weights",
    "image_size",
    "framework_version",
    "format_version",
)


def features_source(args: argparse.Namespace, log: Callable[[str], None]) -> str | None:
    """The features location to train from, or None to train from images (raises FeaturesError)."""
    if not args.features_dir:
        return None
    has_images = flags.has_image_channels(args)
    if args.augment:
        if not has_images:
            raise feature_files.FeaturesError(
                "--augment true: augmentation needs the image channels (train/valid/test or training); "
                "the features channel holds the features of un-augmented images only"
            )
        log("features channel ignored: --augment true trains from the images")
        return None
    if has_images:
        log("image channels unused: the head trains from the features channel")
    return str(args.features_dir)


def run(args: argparse.Namespace, location: str, *, entry_point: str) -> dict[str, Any]:
    """Train, evaluate and (rank 0) save the head; returns the metrics dict written to metrics.json."""
    context = distributed.init_from_env()
    try:
        seed_everything(args.seed)
        job = engine.Job(
            args=args,
            entry_point=entry_point,
            context=context,
            callbacks=loop.Callbacks(),
            precision=precision_module.for_device(context.device),
            tracker=data_module.BadImageTracker(max_fraction=args.max_bad_image_fraction),
        )
        engine.log_manifest(job)
        features = _load(job, location)
        meta = features.meta
        counts = dict(meta["dataset"]["images"])  # the dataset's images, as the in-job path reports
        job.callbacks.on_dataset(counts, args.batch_size, args.epochs)
        head = _initial_head(job, features).to(context.device)
        loaders = engine.Loaders(
            {
                split: feature_loader(
                    _shard(tensors, context), args.batch_size, shuffle=split == "train", seed=args.seed
                )
                for split, tensors in features.splits.items()
            },
            head,
            cache_features=True,
        )
        optimizer = engine.build_optimizer(args, head)
        history, test_stats = engine.fit(job, head, loaders, optimizer, counts=counts)
        result = engine.summarize(job, meta["dataset"], True, history, test_stats)
        result["features"] = {**{key: meta.get(key) for key in _FEATURES_FIELDS}, "source": features.source}
        result["skipped_images"] = meta.get("skipped_images", {})  # skipped once, by features.py
        result["skipped_paths"] = meta.get("skipped_paths", {})
        if context.is_main:
            write_outputs(job, head, meta, result)
        distributed.barrier(context)
        return result
    finally:
        distributed.shutdown(context)


def _load(job: engine.Job, location: str) -> feature_files.FeatureSet:
    started = time.perf_counter()
    features = feature_files.read_features(location)
    feature_files.check_compatible(
        features.meta, image_size=job.args.image_size, weights=job.args.weights, source=features.source
    )
    job.timings["feature_loading_seconds"] = time.perf_counter() - started
    rows = {split: len(targets) for split, (_, targets) in features.splits.items()}
    job.log(
        f"features {features.meta.get('features_key') or '(no key)'}: {len(features.classes)} classes, "
        f"rows {rows}, from {features.source} in {job.timings['feature_loading_seconds']:.2f}s; "
        "backbone not built"
    )
    job.log(
        f"rank {job.context.rank}/{job.context.world_size} on {job.context.device} ({job.precision.name}); "
        f"hyperparameters {json.dumps(flags.hyperparameters(job.args))}"
    )
    return features


def _initial_head(job: engine.Job, features: feature_files.FeatureSet) -> nn.Sequential:
    seed = job.args.seed
    if features.head_init is not None and features.meta.get("seed") == seed:
        head = build_head(len(features.classes))
        try:
            head.load_state_dict(features.head_init)
        except RuntimeError as error:  # wrong keys or shapes: the file does not belong to these classes
            raise feature_files.FeaturesError(
                f"{features.source}: {FEATURES_HEAD_INIT_FILE} does not fit ({error})"
            ) from error
        job.log(f"head initialised as the in-job path does for seed {seed} ({FEATURES_HEAD_INIT_FILE})")
        return head
    job.log(f"head initialised from seed {seed} alone (the features job's seed: {features.meta.get('seed')})")
    return build_head(len(features.classes), seed=seed)


def _shard(tensors: tuple[torch.Tensor, torch.Tensor], context: distributed.DistContext) -> TensorDataset:
    """This rank's rows (every world_size-th), on its device: the in-job cache also shards per rank."""
    features, targets = tensors
    step = slice(context.rank, None, context.world_size)
    return TensorDataset(features[step].to(context.device), targets[step].to(context.device))


def write_outputs(job: engine.Job, head: nn.Module, meta: dict[str, Any], result: dict[str, Any]) -> None:
    args = job.args
    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.save({f"head.{key}": value for key, value in head.state_dict().items()}, model_dir / HEAD_FILE)
    (model_dir / "classes.json").write_text(json.dumps(meta["classes"], indent=2))
    model_meta = {
        "arch": ARCH,
        "head_only": True,
        "image_size": args.image_size,
        "resize_size": presets.resize_size_for(args.image_size),
        "num_classes": len(meta["classes"]),
        "class_dirs": meta["class_dirs"],
        "hyperparameters": flags.hyperparameters(args),
        "features": result["features"],
    }
    (model_dir / "model_meta.json").write_text(json.dumps(model_meta, indent=2))
    output_dir = Path(args.output_data_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / METRICS_FILE).write_text(json.dumps(result, indent=2))
    job.log(f"wrote the head to {model_dir / HEAD_FILE} and metrics to {output_dir / METRICS_FILE}")
