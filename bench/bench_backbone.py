"""The frozen ResNet18's ceiling on this machine next to the features job's throughput, in one run.

    .venv-training/bin/python bench/bench_backbone.py [--sizes 64 128 224] [--images 256]

Run with the training environment's Python (torch as the training image has it, and dogclf installed
editable; .venv-container mirrors the image and has no project installed). For each image size:

- ceiling: images/s of the bare backbone forward (ResNet18 without fc, random init, eval), batched
  (--batch 64, as features.py), in ``torch.inference_mode()``, on preprocessed tensors (no decoding),
  with all the CPUs as threads; in the default memory format and in channels_last;
- job: features.py itself (a subprocess, as SageMaker runs it, with its default hyperparameters) on a
  generated dogImages-shaped tree (500x375 JPEGs) of --images images; its images/s is features.json's
  ``images_per_second`` (decode, resize and forward of every split, start-up excluded);
- ratio: job / best ceiling (channels_last: the mean of a measurement before and one after the job,
  since a shared machine's load drifts), the figure the features job is held to: 80% or more at 224 px.

The machine may be shared: the load average before and after is printed; compare ratios measured in
one run only. ``--omp-threads N`` runs the job with OMP_NUM_THREADS=N in its environment, as the
local twin launches it (localcloud/sagemaker/runners/training.py), to show that features.py uses the
instance anyway. ``--job-args '--num_workers 2 --worker_nice 0'`` passes other hyperparameters to the
job (to compare loader settings against the same ceiling).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from dogclf.contract import FEATURES_META_FILE
from tools.sample_data import write_sample_tree

REPO = Path(__file__).resolve().parents[1]

PHOTO_SIZE = (500, 375)  # the dogImages shape (tools.sample_data.DOGIMAGES_SHAPE)
CLASSES = 4
MIN_SECONDS = 4.0  # timed forward per ceiling measurement (after one warm-up batch)


def backbone() -> nn.Module:
    from torchvision.models import resnet18

    model = resnet18(weights=None)
    model.fc = nn.Identity()
    return model.eval()


def ceiling(size: int, batch: int, channels_last: bool) -> float:
    """Images/s of the bare forward on a ready batch, measured for at least MIN_SECONDS."""
    torch.manual_seed(0)
    model = backbone()
    inputs = torch.randn(batch, 3, size, size)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        model(inputs)  # warm-up: oneDNN picks and caches its kernels
        images, started = 0, time.perf_counter()
        while time.perf_counter() - started < MIN_SECONDS:
            model(inputs)
            images += batch
        return images / (time.perf_counter() - started)


def dataset(root: Path, images: int) -> Path:
    per_class = max(3, images // CLASSES)
    valid = test = max(1, per_class // 8)
    return write_sample_tree(
        root / "dogImages",
        num_classes=CLASSES,
        train_per_class=per_class - valid - test,
        valid_per_class=valid,
        test_per_class=test,
        photo_size=PHOTO_SIZE,
        png_fraction=0.0,  # dogImages is JPEG only
        seed=1,
    )


def features_job(data: Path, size: int, out: Path, omp_threads: int | None, job_args: list[str]) -> dict:
    env = dict(os.environ)
    if omp_threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(omp_threads)
    command = [
        sys.executable,
        str(REPO / "training" / "features.py"),
        "--data_dir",
        str(data),
        "--weights",
        "none",
        "--image_size",
        str(size),
        "--model_dir",
        str(out),
        *job_args,
    ]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(
            f"features.py failed ({completed.returncode}):\n{completed.stdout}{completed.stderr}"
        )
    return json.loads((out / FEATURES_META_FILE).read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 224])
    parser.add_argument("--images", type=int, default=256, help="images in the features job's dataset")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--omp-threads", type=int, default=None, help="OMP_NUM_THREADS for the job")
    parser.add_argument(
        "--job-args", default="", help="extra features.py hyperparameters, e.g. '--num_workers 2'"
    )
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()}; {os.cpu_count()} CPUs; torch {torch.__version__}")
    torch.set_num_threads(os.cpu_count() or 1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-backbone-") as tmp:
        data = dataset(Path(tmp), args.images)
        for size in args.sizes:
            default = ceiling(size, args.batch, channels_last=False)
            before = ceiling(size, args.batch, channels_last=True)
            meta = features_job(
                data, size, Path(tmp) / f"features-{size}", args.omp_threads, args.job_args.split()
            )
            after = ceiling(size, args.batch, channels_last=True)  # the load may drift during the job
            fast = (before + after) / 2
            job = float(meta["images_per_second"])
            rows.append(
                {
                    "image_size": size,
                    "ceiling_default": round(default, 1),
                    "ceiling_channels_last": round(fast, 1),
                    "ceiling_channels_last_before_after": [round(before, 1), round(after, 1)],
                    "features_job": round(job, 1),
                    "ratio": round(job / max(default, fast), 3),
                    "job_threads": meta.get("num_threads"),
                    "job_workers": meta.get("num_workers"),
                    "job_worker_nice": meta.get("worker_nice"),
                }
            )
            row = rows[-1]
            print(
                f"{size:>4} px: ceiling {default:6.1f} images/s (default), {fast:6.1f} (channels_last, "
                f"{before:.1f} before / {after:.1f} after the job); features job {job:6.1f} images/s "
                f"({row['job_threads']} threads, {row['job_workers']} workers "
                f"at nice +{row['job_worker_nice']}, "
                f"{sum(meta['counts'].values())} images) = {row['ratio']:.0%} of the ceiling",
                flush=True,
            )
    print(f"load average after: {os.getloadavg()}")
    print(json.dumps({"bench_backbone": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
