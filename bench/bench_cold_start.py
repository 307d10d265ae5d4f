"""Cold import time of each handler module and built package size of each function.

Import time: a fresh interpreter per sample imports the handler module (settings parsed, clients and
the idempotency layer created, as in a Lambda init) and reports the seconds; the median of N runs.
It runs CPython 3.13 with -S and only what a Lambda sandbox has on its path: functions/ (our code),
the packages of functions/requirements-lambda.txt and boto3 (the runtime's), installed once by pip
for this machine under .aws-sam/bench-* (the .venv would mislead: hundreds of packages there make
aws_xray_sdk's plugin scan slow). x86 here, arm64 in Lambda: compare against the target, not to
the exact Lambda init duration.
Package size: the files sam build put in .aws-sam/build/<Function>/ (run `make sam-build` first),
unzipped bytes and a deflate zip of them (what Lambda stores and counts as the deployment package).

    .venv/bin/python bench/bench_cold_start.py [--runs 7]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HANDLERS = {
    "IngestFunction": "pipeline.handlers.ingest",
    "StartTuningFunction": "pipeline.handlers.start_tuning",
    "TuningCompletedFunction": "pipeline.handlers.tuning_completed",
    "TrainingCompletedFunction": "pipeline.handlers.training_completed",
    "ClassifyFunction": "pipeline.handlers.classify",
}
ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "DATASET_BUCKET": "d",
    "ARTIFACTS_BUCKET": "a",
    "INFERENCE_BUCKET": "i",
    "IDEMPOTENCY_TABLE": "t",
    "NOTIFICATION_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:t",
    "SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/r",
    "TRAINING_CODE_DIR": str(REPO / "training"),
    "POWERTOOLS_SERVICE_NAME": "bench",
    "POWERTOOLS_METRICS_NAMESPACE": "Bench",
}
PROBE = (
    "import sys, time; sys.path[:0] = {paths!r}; "
    "t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
)
PYTHON313 = Path(os.environ.get("PYTHON313", "/root/.pyenv/versions/3.13.0/bin/python3"))
DEPS_DIR = REPO / ".aws-sam" / "bench-deps"
RUNTIME_DIR = REPO / ".aws-sam" / "bench-runtime"
RUNTIME_PACKAGES = ["boto3==1.44.8"]  # the python3.13 runtime ships boto3; same version as .venv


def ensure_sandbox_paths() -> list[str]:
    pip = [str(PYTHON313), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if not DEPS_DIR.is_dir():
        print(f"installing functions/requirements-lambda.txt into {DEPS_DIR} (once)")
        requirements = str(REPO / "functions" / "requirements-lambda.txt")
        subprocess.run([*pip, "--no-deps", "--target", str(DEPS_DIR), "-r", requirements], check=True)
    if not RUNTIME_DIR.is_dir():
        print(f"installing {RUNTIME_PACKAGES} into {RUNTIME_DIR} (once)")
        subprocess.run([*pip, "--target", str(RUNTIME_DIR), *RUNTIME_PACKAGES], check=True)
    return [str(REPO / "functions"), str(DEPS_DIR), str(RUNTIME_DIR)]


def import_seconds(module: str, runs: int, paths: list[str]) -> float:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("PYTHON", "AWS_"))}
    env.update(ENV)
    samples = []
    for _ in range(runs + 1):  # the first run writes the .pyc files, as Lambda's first init would
        command = [str(PYTHON313), "-S", "-c", PROBE.format(module=module, paths=paths)]
        output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
        samples.append(float(output.strip().splitlines()[-1]))
    return statistics.median(samples[1:])


def package_sizes(function: str) -> tuple[int, int] | None:
    root = REPO / ".aws-sam" / "build" / function
    if not root.is_dir():
        return None
    files = [path for path in sorted(root.rglob("*")) if path.is_file()]
    raw = sum(path.stat().st_size for path in files)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(root).as_posix())
    return raw, len(buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    paths = ensure_sandbox_paths()
    print(f"{'function':28s} {'import ms':>9s} {'unzipped MB':>12s} {'zipped MB':>10s}")
    for function, module in HANDLERS.items():
        milliseconds = import_seconds(module, args.runs, paths) * 1000
        sizes = package_sizes(function)
        size_text = f"{sizes[0] / 1e6:12.2f} {sizes[1] / 1e6:10.2f}" if sizes else f"{'(no build)':>23s}"
        print(f"{function:28s} {milliseconds:9.0f} {size_text}")
    print("targets: import <= 150 ms, package <= 10 MB")


if __name__ == "__main__":
    main()
