"""The whole local pipeline on a dogImages-shaped archive: stage by stage, per job, and an AWS cost estimate.

    .venv/bin/python bench/bench_pipeline.py [--data ZIP] [--image-sizes 64 224] [demo flags, e.g. --trials 4]

Without ``--data`` it generates (once, cached in .bench-data/) an archive shaped like the real
dogImages.zip (tools.sample_data --dogimages-shape: 133 classes, 8,246 JPEGs of 500x375, ~600 MB)
and runs ``localcloud.demo.main`` on it once per image size (default 64 and the template's 224 px), each
from a clean state (the demo wipes its state dir), so the numbers are the ones ``make demo DATA=...
--image-size N`` gives. After each run, from the local SageMaker's own records
(ListTrainingJobs/DescribeTrainingJob, run in the same process), it prints:

- the demo's stage table (seconds and share of the total);
- every training job: kind (features / trial / profiled), instance type, wall seconds, channels;
- how many times the backbone ran over the dataset to make features: features jobs plus trials that
  were given image channels (a trial given only the features channel has no images to run it on);
  then the profiled job's passes, from its metrics.json (``backbone_images``: the Debugger's steps
  only when it trained from the features channel; else epochs x (train + valid) + test images), and
  the total backbone passes per image of the run (target: 1 plus the Debugger's steps);
- per-trial wall time (min / median / max);
- an AWS cost estimate: each job's billable seconds (its local seconds plus --aws-job-overhead of
  AWS start-up, 120 s by default) x the on-demand list price of the instance type it asked for, next
  to the design before the features stage (every trial ran the backbone; measured on this machine: 4 trials of
  248-264 s and a 127 s profiled job, all on ml.g4dn.xlarge) and to this run with the template's
  MaxTuningJobs trials. Local seconds on 2 cores stand in for AWS's, which is pessimistic for the GPU
  instances and about right for the small CPU ones; serverless inference and Lambda are per request
  and left out.

At the end, one line per image size: exit code, total seconds, backbone passes per image, cost, and
the load average around the run (the machine may be shared; say so next to any figure).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

from dogclf import contract
from localcloud.cloud import LocalCloud
from localcloud.demo.main import parse_args, run_demo
from localcloud.demo.summary import DemoResult
from localcloud.stack.template import load_template
from tools.sample_data import DOGIMAGES_SHAPE, write_sample_zip

REPO = Path(__file__).resolve().parents[1]

DATA_DIR = REPO / ".bench-data"
# SageMaker training, on-demand, us-east-1, USD per instance-hour (aws.amazon.com/sagemaker/pricing,
# November 2026). Override with --prices '{"ml.m5.large": 0.115}'.
LIST_PRICES_PER_HOUR: dict[str, float] = {
    "ml.m5.large": 0.115,
    "ml.m5.xlarge": 0.23,
    "ml.m5.2xlarge": 0.461,
    "ml.c5.xlarge": 0.204,
    "ml.c5.2xlarge": 0.408,
    "ml.g4dn.xlarge": 0.736,
    "ml.g5.xlarge": 1.408,
}
# Billable seconds a training job costs on AWS before its script runs: SageMaker bills from the
# "Downloading" secondary status, which pulls the PyTorch training image (several GB) and copies the
# channels. An assumption (about 2 minutes), not measured here: override with --aws-job-overhead.
AWS_JOB_OVERHEAD_S = 120.0
# template.yaml's MaxTuningJobs default (the demo runs 4): the trial count of a run on AWS.
TEMPLATE_PARAMETERS = load_template(REPO / "template.yaml")["Parameters"]
TEMPLATE_MAX_TUNING_JOBS = int(TEMPLATE_PARAMETERS["MaxTuningJobs"]["Default"])
# The design before the features stage (every trial ran the backbone), measured here (2 cores, 64 px).
BEFORE_JOBS: tuple[tuple[str, str, float], ...] = (
    *(("trial", "ml.g4dn.xlarge", seconds) for seconds in (248.0, 252.0, 260.0, 264.0)),
    ("profiled", "ml.g4dn.xlarge", 127.0),
)


def dogimages_archive() -> Path:
    """The generated dogImages-shaped archive (built on first use: about 2-3 minutes on one core)."""
    path = DATA_DIR / "dogimages-shaped.zip"
    if not path.is_file():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        print(f"generating {path} (dogImages shape, once)...", flush=True)
        started = time.monotonic()
        partial = path.with_suffix(".partial")
        write_sample_zip(partial, **DOGIMAGES_SHAPE.kwargs())
        partial.replace(path)
        print(f"generated in {time.monotonic() - started:.0f} s", flush=True)
    return path


def job_kind(name: str, description: dict[str, Any], prefix: str) -> str:
    if contract.is_pipeline_features_job(name, prefix):
        return "features"
    if contract.is_pipeline_training_job(name, prefix):
        return "profiled"
    if description.get("TuningJobArn"):
        return "trial"
    return "other"


def collect_jobs(cloud: LocalCloud, prefix: str) -> list[dict[str, Any]]:
    """Every training job the local SageMaker ran, with what the report needs."""
    sagemaker = cloud.client("sagemaker")
    names: list[str] = []
    for page in sagemaker.get_paginator("list_training_jobs").paginate():
        names.extend(summary["TrainingJobName"] for summary in page["TrainingJobSummaries"])
    jobs = []
    for name in names:
        description = sagemaker.describe_training_job(TrainingJobName=name)
        kind = job_kind(name, description, prefix)
        started, ended = description.get("TrainingStartTime"), description.get("TrainingEndTime")
        wall = (ended - started).total_seconds() if started and ended else float("nan")
        jobs.append(
            {
                "name": name,
                "kind": job_kind(name, description, prefix),
                "status": description["TrainingJobStatus"],
                "instance_type": description["ResourceConfig"]["InstanceType"],
                "wall_s": wall,
                "billable_s": float(description.get("BillableTimeInSeconds", wall)),
                "channels": sorted(c["ChannelName"] for c in description.get("InputDataConfig", [])),
                "backbone_passes": (
                    profiled_passes(cloud, description)
                    if kind == "profiled" and description["TrainingJobStatus"] == "Completed"
                    else None
                ),
            }
        )
    return sorted(jobs, key=lambda job: (job["kind"], job["name"]))


def job_metrics(cloud: LocalCloud, description: dict[str, Any]) -> dict[str, Any]:
    """metrics.json out of the job's output.tar.gz (where SageMaker uploads SM_OUTPUT_DATA_DIR)."""
    bucket, _, prefix = description["OutputDataConfig"]["S3OutputPath"].removeprefix("s3://").partition("/")
    key = contract.job_output_key(prefix, description["TrainingJobName"], contract.OUTPUT_ARCHIVE)
    body = cloud.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        member = archive.extractfile(contract.METRICS_FILE)
        if member is None:
            raise ValueError(f"{key} holds no {contract.METRICS_FILE}")
        return dict(json.loads(member.read()))


def profiled_passes(cloud: LocalCloud, description: dict[str, Any]) -> float | None:
    """Backbone passes over the dataset the profiled job made: its own count when it trained from the
    features channel, else the full model over train and valid each epoch and over test once."""
    try:
        metrics = job_metrics(cloud, description)
    except Exception as error:  # the report goes on without this figure
        print(f"no metrics.json for {description['TrainingJobName']}: {error}", flush=True)
        return None
    return passes_from_metrics(metrics)


def passes_from_metrics(metrics: dict[str, Any]) -> float:
    if "backbone_images" in metrics:
        return float(metrics["backbone_images"]["passes"])
    images = metrics["dataset"]["images"]
    epochs = len(metrics["history"]["epochs"])
    forward = epochs * (images["train"] + images["valid"]) + images["test"]
    return forward / max(sum(images.values()), 1)


def feature_passes(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    features_jobs = sum(job["kind"] == "features" for job in jobs)
    trials_from_images = sum(job["kind"] == "trial" and "train" in job["channels"] for job in jobs)
    profiled = sum(job["backbone_passes"] or 0.0 for job in jobs if job["kind"] == "profiled")
    return {
        "features_jobs": features_jobs,
        "trials_from_images": trials_from_images,
        "total": features_jobs + trials_from_images,
        "profiled": round(profiled, 3),
        "per_image": round(features_jobs + trials_from_images + profiled, 3),
    }


def cost(jobs: list[tuple[str, str, float]], prices: dict[str, float], overhead_s: float) -> dict[str, Any]:
    """(kind, instance type, billable seconds) -> USD by kind and in total; each job also pays
    ``overhead_s`` billable seconds of AWS start-up."""
    by_kind: dict[str, float] = {}
    unpriced = sorted({instance for _, instance, _ in jobs if instance not in prices})
    for kind, instance, seconds in jobs:
        by_kind[kind] = by_kind.get(kind, 0.0) + (seconds + overhead_s) * prices.get(instance, 0.0) / 3600
    return {"by_kind": by_kind, "total": sum(by_kind.values()), "unpriced": unpriced}


def with_trials(jobs: list[tuple[str, str, float]], count: int) -> list[tuple[str, str, float]]:
    """The same run with ``count`` trials of the median trial's length (MaxTuningJobs=count)."""
    trials = [job for job in jobs if job[0] == "trial"]
    if not trials:
        return jobs
    median = statistics.median(seconds for _, _, seconds in trials)
    return [job for job in jobs if job[0] != "trial"] + [("trial", trials[0][1], median)] * count


def print_report(
    result: DemoResult,
    total_s: float,
    jobs: list[dict[str, Any]],
    prices: dict[str, float],
    overhead_s: float,
) -> dict[str, Any]:
    print(f"\nbench_pipeline: exit={result.exit_code} total={total_s:.1f} s")
    print(f"{'stage':<20} {'seconds':>8} {'share':>7}")
    for stage, seconds in result.stage_seconds.items():
        print(f"{stage:<20} {seconds:8.1f} {seconds / total_s:7.1%}")

    print(f"\n{'job':<44} {'kind':<9} {'instance':<15} {'wall s':>7}  channels")
    for job in jobs:
        print(
            f"{job['name']:<44} {job['kind']:<9} {job['instance_type']:<15} {job['wall_s']:7.1f}  "
            f"{','.join(job['channels'])}"
        )
    passes = feature_passes(jobs)
    print(
        f"\nbackbone passes to make features: {passes['total']} "
        f"({passes['features_jobs']} features job(s), {passes['trials_from_images']} trial(s) from images); "
        f"profiled job: {passes['profiled']:.3f} passes; backbone passes per image in this run: "
        f"{passes['per_image']:.3f}"
    )
    trial_walls = [job["wall_s"] for job in jobs if job["kind"] == "trial"]
    if trial_walls:
        print(
            f"trials: {len(trial_walls)}, wall s min {min(trial_walls):.1f} / median "
            f"{statistics.median(trial_walls):.1f} / max {max(trial_walls):.1f}"
        )

    measured = [(job["kind"], job["instance_type"], job["billable_s"]) for job in jobs]
    before = cost(list(BEFORE_JOBS), prices, overhead_s)
    after = cost(measured, prices, overhead_s)
    default_trials = cost(with_trials(measured, TEMPLATE_MAX_TUNING_JOBS), prices, overhead_s)
    print(
        f"\nAWS training cost estimate per pipeline run (USD, on-demand list prices; each job's local "
        f"seconds + {overhead_s:.0f} s of AWS start-up):"
    )
    print(f"{'':<10} {'before features':>17} {'this run':>10} {f'{TEMPLATE_MAX_TUNING_JOBS} trials':>10}")
    for kind in ("features", "trial", "profiled"):
        print(
            f"{kind:<10} {before['by_kind'].get(kind, 0.0):17.4f} {after['by_kind'].get(kind, 0.0):10.4f} "
            f"{default_trials['by_kind'].get(kind, 0.0):10.4f}"
        )
    print(f"{'total':<10} {before['total']:17.4f} {after['total']:10.4f} {default_trials['total']:10.4f}")
    if after["unpriced"]:
        print(f"(no list price for {', '.join(after['unpriced'])}: counted as 0; pass --prices)")
    summary = {
        "exit": result.exit_code,
        "total_s": round(total_s, 1),
        "stages_s": {stage: round(seconds, 1) for stage, seconds in result.stage_seconds.items()},
        "feature_passes": passes,
        "trial_wall_s": [round(wall, 1) for wall in trial_walls],
        "cost_usd": {
            "before": round(before["total"], 4),
            "after": round(after["total"], 4),
            f"after_{TEMPLATE_MAX_TUNING_JOBS}_trials": round(default_trials["total"], 4),
        },
    }
    print(json.dumps(summary))
    return summary


def run_size(
    demo_argv: list[str], data: Path, size: int, prices: dict[str, float], overhead_s: float
) -> dict[str, Any]:
    """One demo run at ``size`` px from a clean state, and its report."""
    # Exactly `make demo DATA=<archive> DEMO_ARGS=...`: the same defaults, so the same numbers.
    settings = parse_args([*demo_argv, "--data", str(data), "--image-size", str(size)])
    prefix = settings.parameter_overrides().get("JobNamePrefix", "dogclf")
    collected: dict[str, list[dict[str, Any]]] = {}

    def on_finish(cloud: LocalCloud, _: DemoResult) -> None:
        collected["jobs"] = collect_jobs(cloud, prefix)

    load_before = os.getloadavg()
    started = time.monotonic()
    result = run_demo(settings, on_finish=on_finish)
    total_s = time.monotonic() - started
    print(f"\n=== {size} px ===")
    summary = print_report(result, total_s, collected.get("jobs", []), prices, overhead_s)
    return {"image_size": size, **summary, "load_before": load_before, "load_after": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=False)
    parser.add_argument("--data", type=Path, help="a dataset zip (default: the generated dogImages shape)")
    parser.add_argument(
        "--image-sizes", type=int, nargs="+", default=[64, 224], help="one pipeline run per size"
    )
    parser.add_argument("--prices", type=json.loads, default={}, help="JSON {instance type: USD per hour}")
    parser.add_argument(
        "--aws-job-overhead",
        type=float,
        default=AWS_JOB_OVERHEAD_S,
        help="billable seconds each training job adds on AWS before its script runs",
    )
    ours, demo_argv = parser.parse_known_args(argv)
    data = ours.data or dogimages_archive()
    prices = {**LIST_PRICES_PER_HOUR, **ours.prices}
    runs = [run_size(demo_argv, data, size, prices, ours.aws_job_overhead) for size in ours.image_sizes]
    print(
        f"\n{'size':>5} {'exit':>4} {'total s':>8} {'passes/image':>12} {'AWS USD':>8}  load avg (1/5/15 min)"
    )
    for run in runs:
        load = "/".join(f"{value:.1f}" for value in run["load_after"])
        print(
            f"{run['image_size']:>5} {run['exit']:>4} {run['total_s']:8.1f} "
            f"{run['feature_passes']['per_image']:12.3f} {run['cost_usd']['after']:8.4f}  after: {load}"
        )
    print(json.dumps({"bench_pipeline": runs}))
    return max(run["exit"] for run in runs)


if __name__ == "__main__":
    sys.exit(main())
