"""Features entry point: run the frozen ResNet18 backbone ONCE over every split of a dataset (SageMaker
script mode, the pipeline's features job; contract.FEATURES_PROGRAM).

Inputs are the image channels hpo.py reads (train/valid/test, or one ``training`` channel; folders or
tar shards). Every split goes through dogclf/feature_pass.py (one loader over train, valid and test;
the eval preset, deterministic, bit for bit), in the engine's device precision, with the model's own
``features()``. Into SM_MODEL_DIR (SageMaker tars
it to model.tar.gz) go one contract.FEATURES_SPLIT_FILE per split and contract.FEATURES_META_FILE;
the format is in dogclf/feature_files.py. Tuning trials read that archive as their ``features``
channel (hpo.py, dogclf/head_trial.py) and train the head only.

Throughput (dogclf/backbone_speed.py, measured by bench/bench_backbone.py): the backbone runs in the
channels_last memory format with all the instance's CPUs as intra-op threads (--num_threads 0), while
--num_workers DataLoader workers (default: the CPUs less one, at most 4) decode and resize the next
batches at the lowest priority (--worker_nice 19): they take the cores in the forward's gaps instead of
preempting one of its threads mid-convolution, which leaves the others spinning at the next barrier.

Hyperparameters: --weights (imagenet | none | <path>), --image_size, --batch_size (extraction batch),
--num_workers, --worker_nice, --num_threads (0: the instance's CPUs), --seed (the trials' --seed: the
random init of --weights none and the saved initial head), --dataset_id, --features_key,
--framework_version (recorded; with all three plus weights and image size, the key is checked against
contract.features_key), --max_bad_image_fraction. Undecodable images are skipped and counted as in
hpo.py; too many, a bad layout or unavailable weights fail through dogclf/failure.py (exit code 2 and
the failure file).

Run by hand: ``python features.py --data_dir <dataset> --weights none --image_size 64 --model_dir out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torchvision

from dogclf import (
    backbone_speed,
    contract,
    distributed,
    feature_files,
    feature_pass,
    flags,
    loaders,
    presets,
    sm_env,
)
from dogclf import data as data_module
from dogclf import precision as precision_module
from dogclf.failure import run_main
from dogclf.layout import SPLITS
from dogclf.model import ARCH, FEATURE_DIM, build_model

PROGRESS_STEPS = 10  # progress lines per split (at each tenth of its images)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Compute the frozen backbone's features once per split.")
    hp = parser.add_argument_group("hyperparameters")
    hp.add_argument("--weights", default="imagenet", help="imagenet | none (random init) | <state_dict path>")
    hp.add_argument("--image_size", type=int, default=224)
    hp.add_argument("--batch_size", type=int, default=64, help="images per backbone pass")
    hp.add_argument("--num_workers", type=int, default=min(4, max(0, sm_env.num_cpus() - 1)))
    hp.add_argument(
        "--worker_nice", type=int, default=19, help="niceness added to the loader workers (0: none)"
    )
    hp.add_argument(
        "--num_threads", type=int, default=0, help="intra-op threads of the forward; 0: the instance's CPUs"
    )
    hp.add_argument(
        "--seed", type=int, default=0, help="the trials' seed: random init of --weights none, initial head"
    )
    hp.add_argument("--dataset_id", default="")
    hp.add_argument(
        "--content_id", default="", help="what --features_key is derived from (default: --dataset_id)"
    )
    hp.add_argument("--features_key", default="")
    hp.add_argument("--framework_version", default="", help="the job's framework version (recorded)")
    hp.add_argument("--max_bad_image_fraction", type=float, default=0.01)
    paths = parser.add_argument_group("paths (default: SageMaker environment)")
    paths.add_argument("--model_dir", default=sm_env.model_dir())
    flags.add_image_channels(paths)
    return parser


class Progress:
    """Prints ``<split>: <done>/<total> images, <rate> images/s`` at each tenth of a split."""

    def __init__(self, split: str, total: int) -> None:
        self.split, self.total, self.done = split, total, 0
        self.started = time.perf_counter()
        self._next = 1

    def __call__(self, images: int) -> None:
        self.done += images
        reached = self.done * PROGRESS_STEPS // max(self.total, 1)
        if reached >= self._next:
            self._next = reached + 1
            print(
                f"features {self.split}: {self.done}/{self.total} images, {self.rate():.1f} images/s",
                flush=True,
            )

    def rate(self) -> float:
        return self.done / max(time.perf_counter() - self.started, 1e-9)


def _check_key(args: argparse.Namespace) -> None:
    """A key that does not match its inputs would file these features under another dataset's name."""
    # The key is derived from the images' content id (one features job for every upload of the
    # same images); a job started without one keys on its dataset id.
    identity = args.content_id or args.dataset_id
    if not (args.features_key and identity and args.framework_version):
        return
    expected = contract.features_key(identity, args.weights, args.image_size, args.framework_version)
    if args.features_key != expected:
        raise feature_files.FeaturesError(
            f"--features_key {args.features_key} is not the key of dataset {identity!r}, weights "
            f"{args.weights!r}, image size {args.image_size}, framework {args.framework_version!r} "
            f"({expected})"
        )


def _context() -> distributed.DistContext:
    """One process on one instance: the features are computed once, not sharded."""
    if len(sm_env.hosts()) > 1 or int(sm_env.env_str("WORLD_SIZE", "1") or "1") > 1:
        raise feature_files.FeaturesError("features.py runs on one instance (InstanceCount 1), one process")
    use_cuda = torch.cuda.is_available() and sm_env.num_gpus() > 0
    device = torch.device("cuda", 0) if use_cuda else torch.device("cpu")
    return distributed.DistContext(rank=0, world_size=1, local_rank=0, device=device)


def main(argv: list[str] | None = None) -> int:
    args = flags.parse_args(get_args_parser(), argv)
    started = time.perf_counter()
    _check_key(args)
    context = _context()
    precision = precision_module.for_device(context.device)
    threads = backbone_speed.use_instance_threads(args.num_threads)
    loaders.seed_everything(args.seed)
    tracker = data_module.BadImageTracker(max_fraction=args.max_bad_image_fraction)
    split_dirs = data_module.find_split_dirs(args.data_dir, args.train_dir, args.valid_dir, args.test_dir)
    index = data_module.scan(split_dirs)
    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    counts = {split: len(samples) for split, samples in index.samples.items()}
    print(
        f"dataset {args.dataset_id or '(no id)'}: {len(index.classes)} classes, images {counts}; "
        f"{ARCH} weights {args.weights}, {args.image_size}px, batch {args.batch_size}, "
        f"on {context.device} ({precision.name}), {threads} threads, {args.num_workers} loader workers",
        flush=True,
    )
    # Seeded as engine.main seeds, and built the same way: model.head is the initial head of a trial
    # with this seed, saved so that a trial from these features starts where the in-job path starts.
    model = build_model(len(index.classes), args.weights).to(context.device)
    feature_files.write_head_init(model_dir, model.head)
    backbone_speed.to_fast_layout(model)
    progress = {split: Progress(split, len(index.samples[split])) for split in SPLITS}
    extract_started = time.perf_counter()
    extracted = feature_pass.extract_splits(
        model,
        index.samples,
        image_size=args.image_size,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        context=context,
        tracker=tracker,
        precision=precision,
        progress=lambda split, images: progress[split](images),
        worker_nice=args.worker_nice,
    )
    rows: dict[str, int] = {}
    for split, (features, targets) in extracted.items():
        feature_files.write_split(model_dir, split, features, targets)
        rows[split] = len(targets)
    extract_seconds = time.perf_counter() - extract_started
    images = sum(counts.values())
    meta = _meta(args, index, rows, tracker, context, precision.name)
    meta.update(
        seconds=round(time.perf_counter() - started, 3),
        extract_seconds=round(extract_seconds, 3),
        images_per_second=round(images / max(extract_seconds, 1e-9), 2),
    )
    feature_files.write_meta(model_dir, meta)
    print(
        f"features done: {images} images in {extract_seconds:.1f}s ({meta['images_per_second']} images/s), "
        f"rows {rows}, {FEATURE_DIM}-d, key {args.features_key or '(none)'}, written to {model_dir}",
        flush=True,
    )
    return 0


def _meta(
    args: argparse.Namespace,
    index: data_module.DatasetIndex,
    rows: dict[str, int],
    tracker: data_module.BadImageTracker,
    context: distributed.DistContext,
    precision: str,
) -> dict[str, Any]:
    return {
        "features_key": args.features_key,
        "dataset_id": args.dataset_id,
        "weights": args.weights,
        "seed": args.seed,
        "image_size": args.image_size,
        "resize_size": presets.resize_size_for(args.image_size),
        "framework_version": args.framework_version,
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "backbone": ARCH,
        "feature_dim": FEATURE_DIM,
        "classes": index.classes,
        "class_dirs": index.class_dirs,
        "counts": rows,
        "dataset": index.summary.to_dict(),
        **tracker.to_dict(),
        "device": str(context.device),
        "precision": precision,
        "num_threads": torch.get_num_threads(),
        "num_workers": args.num_workers,
        "worker_nice": args.worker_nice,
    }


if __name__ == "__main__":
    sys.exit(run_main(main))
