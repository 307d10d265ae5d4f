"""Feature caching benchmark: one hpo.py trial with and without the backbone-feature cache.

Same data, same epochs, same seed, no augmentation; only ``--feature_cache`` differs. Prints per-trial
wall time (whole process, as a tuning job pays it, and training-only time from metrics.json), both
test accuracies and the speed-up ratios, all measured in this one run. Target: >= 4x at 5 epochs,
accuracy within 1 point.

Columns: wall s = whole process; train s = inside the script (metrics.json total_seconds);
cache s = one backbone pass over all splits (cached mode); epoch s = mean epoch time.
The cap on the speed-up is (epochs x (train + valid) + test) / (train + valid + test) images through
the backbone, 4.58x with the defaults (dogImages itself: 4.6x); fixed start-up costs pull it lower.

Run: ``.venv-training/bin/python bench/bench_feature_cache.py [--image-size 224 --epochs 5]``
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

from tools.sample_data import write_sample_tree

REPO = Path(__file__).resolve().parents[1]


def run_trial(
    data_dir: Path, work: Path, *, feature_cache: bool, args: argparse.Namespace
) -> dict[str, float]:
    work.mkdir(parents=True)
    command = [
        sys.executable,
        str(REPO / "training" / "hpo.py"),
        "--data_dir",
        str(data_dir),
        "--model_dir",
        str(work / "model"),
        "--output_data_dir",
        str(work / "out"),
        "--weights",
        "none",
        "--epochs",
        str(args.epochs),
        "--image_size",
        str(args.image_size),
        "--batch_size",
        str(args.batch_size),
        "--num_workers",
        str(args.num_workers),
        "--learning_rate",
        "0.001",
        "--seed",
        "0",
        "--augment",
        "false",
        "--feature_cache",
        "true" if feature_cache else "false",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"trial failed:\n{completed.stdout}\n{completed.stderr}")
    recorded = json.loads((work / "out" / "metrics.json").read_text())
    return {
        "wall_s": wall,
        "train_s": recorded["timings"]["total_seconds"],
        "test_accuracy": recorded["final"]["test:accuracy"],
        "valid_accuracy": recorded["final"]["valid:accuracy"],
        "feature_s": recorded["timings"].get("feature_extraction_seconds", 0.0),
        "epoch_s": sum(e["seconds"] for e in recorded["history"]["epochs"])
        / len(recorded["history"]["epochs"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=224)  # what the pipeline trains at
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--train-per-class", type=int, default=60)
    parser.add_argument("--eval-per-class", type=int, default=8, help="images per class in valid and in test")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        root = Path(tmp)
        data = write_sample_tree(
            root / "data",
            num_classes=args.classes,
            train_per_class=args.train_per_class,
            valid_per_class=args.eval_per_class,
            test_per_class=args.eval_per_class,
            image_size=args.image_size,
        )
        images = args.classes * (args.train_per_class + 2 * args.eval_per_class)
        cached = run_trial(data, root / "cached", feature_cache=True, args=args)
        uncached = run_trial(data, root / "uncached", feature_cache=False, args=args)

    print(
        f"feature cache benchmark: hpo.py, {args.epochs} epochs, {args.classes} classes, {images} images of "
        f"{args.image_size}px, batch {args.batch_size}, random-init ResNet18, CPU threads {os.cpu_count()}"
    )
    columns = ("wall s", "train s", "cache s", "epoch s", "test acc")
    header = f"{'mode':<12}" + "".join(f"{c:>10}" for c in columns) + f"{'valid acc':>11}"
    print(header)
    print("-" * len(header))
    for name, row in (("cached", cached), ("uncached", uncached)):
        print(
            f"{name:<12}{row['wall_s']:>10.2f}{row['train_s']:>10.2f}{row['feature_s']:>10.2f}{row['epoch_s']:>10.2f}"
            f"{row['test_accuracy']:>10.4f}"
            f"{row['valid_accuracy']:>11.4f}"
        )
    wall_ratio = uncached["wall_s"] / cached["wall_s"]
    train_ratio = uncached["train_s"] / cached["train_s"]
    accuracy_gap = abs(uncached["test_accuracy"] - cached["test_accuracy"]) * 100
    print(f"speed-up (uncached / cached): wall {wall_ratio:.2f}x, training {train_ratio:.2f}x (target >= 4x)")
    print(f"test accuracy difference: {accuracy_gap:.2f} points (target <= 1)")


if __name__ == "__main__":
    main()
