"""Tuning trials from a features channel against trials from images, on one generated dataset.

Runs, each as its own process through the SageMaker training toolkit's entry
(``python -m sagemaker_training.cli.train``, /opt/ml laid out in a temporary folder, as the local
emulator runs jobs): the features job (features.py) once, then N trials (hpo.py) from its
``features`` channel, then N trials from the image channels with the in-job feature cache (the old
way: one backbone pass per trial). Same hyperparameters and seed for every trial. Prints each job's
whole-process wall time and backbone passes (counted from the job logs), then the ratios, all
measured in this one run.

Not included: the toolkit's ``pip install -r requirements.txt`` step (code/ here carries no
requirements.txt; the emulator's overlay makes it a no-op of about 1.5 s per job) and the channel
download. Every job runs with contract.NO_SMDEBUG_ENVIRONMENT (without it, the toolkit spends about
3 s of CPU per job importing smdebug). Random-init backbone (--weights none): accuracy is the sample
data's, not dogImages'.

Run: ``.venv-training/bin/python bench/bench_trials.py [--trials 3 --classes 8 --image-size 64]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from dogclf import contract
from tools.sample_data import write_sample_tree

REPO = Path(__file__).resolve().parents[1]

TRAINING = REPO / "training"


def run_job(base: Path, program: str, hyperparameters: dict[str, object], channels: dict[str, Path]) -> dict:
    """One job through the toolkit; returns wall seconds, backbone passes and metrics.json if any."""
    code = base / "code"
    shutil.copytree(TRAINING / "dogclf", code / "dogclf", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("hpo.py", "inference.py", contract.FEATURES_PROGRAM):  # image trials ship inference.py
        shutil.copy2(TRAINING / name, code / name)
    config = base / "input" / "config"
    config.mkdir(parents=True)
    for name, source in channels.items():
        (base / "input" / "data").mkdir(parents=True, exist_ok=True)
        (base / "input" / "data" / name).symlink_to(source, target_is_directory=True)
    hps = {**hyperparameters, "sagemaker_program": program, "sagemaker_submit_directory": str(code)}
    (config / "hyperparameters.json").write_text(json.dumps({k: json.dumps(v) for k, v in hps.items()}))
    modes = {
        name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"} for name in channels
    }
    (config / "inputdataconfig.json").write_text(json.dumps(modes))
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"})
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_", "PYTHONPATH"))}
    env.update(SAGEMAKER_BASE_DIR=str(base), SM_STUDIO_LOCAL_MODE="true", PYTHONUNBUFFERED="1")
    env.update(contract.NO_SMDEBUG_ENVIRONMENT)  # every job here, both ways: the pipeline's trial setting
    cpu_before = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "sagemaker_training.cli.train"],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    wall = time.perf_counter() - started
    cpu = _children_cpu() - cpu_before
    log = done.stdout + done.stderr
    if done.returncode != 0:
        raise SystemExit(f"{program} failed ({done.returncode}):\n{log[-4000:]}")
    metrics_path = base / "output" / "data" / contract.METRICS_FILE
    passes = log.count("features done:") + log.count("cached backbone features")
    return {
        "wall": wall,
        "cpu": cpu,
        "passes": passes,
        "metrics": json.loads(metrics_path.read_text()) if metrics_path.is_file() else None,
    }


def _children_cpu() -> float:
    """User + system CPU seconds of finished child processes: unlike wall time, not inflated when other
    work shares the cores."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=3, help="trials each way")
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--train-per-class", type=int, default=40)
    parser.add_argument("--eval-per-class", type=int, default=8, help="images per class in valid and in test")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    trial_hps = {
        "weights": "none",
        "image_size": args.image_size,
        "epochs": args.epochs,
        "batch_size": 32,
        "learning_rate": 0.001,
        "num_workers": 1,
        "seed": 0,
        "augment": False,
    }
    rows: list[tuple[str, dict]] = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-trials-") as tmp:
        root = Path(tmp)
        data = write_sample_tree(
            root / "data",
            num_classes=args.classes,
            train_per_class=args.train_per_class,
            valid_per_class=args.eval_per_class,
            test_per_class=args.eval_per_class,
            image_size=args.image_size,
        )
        images = {split: data / split for split in ("train", "valid", "test")}
        features_hps = {k: trial_hps[k] for k in ("weights", "image_size", "num_workers", "seed")}
        features = run_job(
            root / "features", contract.FEATURES_PROGRAM, {**features_hps, "batch_size": 64}, images
        )
        rows.append(("features job", features))
        channel = root / "features-channel"
        channel.mkdir()
        with tarfile.open(channel / contract.MODEL_ARCHIVE, "w:gz") as tar:  # what SageMaker uploads
            for path in sorted((root / "features" / "model").iterdir()):
                tar.add(path, arcname=path.name)
        for number in range(args.trials):
            job = run_job(root / f"trial-f{number}", "hpo.py", trial_hps, {"features": channel})
            rows.append((f"trial {number + 1}, features channel", job))
        for number in range(args.trials):
            job = run_job(root / f"trial-i{number}", "hpo.py", trial_hps, images)
            rows.append((f"trial {number + 1}, images + cache", job))

    total = sum(args.classes * n for n in (args.train_per_class, 2 * args.eval_per_class))
    print(
        f"trials benchmark: {args.trials} trials each way, {args.classes} classes, {total} images of "
        f"{args.image_size}px, {args.epochs} epochs, random-init ResNet18, {os.cpu_count()} CPUs, "
        "each job through the toolkit"
    )
    print(f"load average (1 min): {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print(f"{'job':<32}{'wall s':>9}{'cpu s':>8}{'backbone passes':>17}{'test acc':>10}")
    for name, row in rows:
        accuracy = f"{row['metrics']['final']['test:accuracy']:.4f}" if row["metrics"] else "-"
        print(f"{name:<32}{row['wall']:>9.2f}{row['cpu']:>8.2f}{row['passes']:>17}{accuracy:>10}")
    from_features = [row for name, row in rows if "features channel" in name]
    from_images = [row for name, row in rows if "images" in name]
    mean_f = sum(r["wall"] for r in from_features) / len(from_features)
    mean_i = sum(r["wall"] for r in from_images) / len(from_images)
    cpu_f = sum(r["cpu"] for r in from_features) / len(from_features)
    cpu_i = sum(r["cpu"] for r in from_images) / len(from_images)
    way_f = features["wall"] + sum(r["wall"] for r in from_features)
    way_i = sum(r["wall"] for r in from_images)
    passes_f = features["passes"] + sum(r["passes"] for r in from_features)
    print(
        f"per trial: {mean_f:.2f}s wall ({cpu_f:.2f}s cpu) from features vs {mean_i:.2f}s ({cpu_i:.2f}s cpu) "
        f"from images ({mean_i / mean_f:.2f}x wall, {cpu_i / cpu_f:.2f}x cpu); "
        f"{args.trials} trials incl. the features job: {way_f:.1f}s, {passes_f} backbone pass(es) vs "
        f"{way_i:.1f}s, {sum(r['passes'] for r in from_images)} backbone passes ({way_i / way_f:.2f}x)"
    )


if __name__ == "__main__":
    main()
