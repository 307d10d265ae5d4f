"""Cold start of each Lambda handler and the built size of each function package and layer.

Two timings per handler, each the median of N fresh interpreters (min-max in brackets):

- import: ``import pipeline.handlers.<name>``, what the issue measures as the cold import time
  (target <= 150 ms). The handler modules create nothing heavy at import.
- import + prepare: the import plus the module's ``prepare()``, which every invocation calls first
  and which creates what the first call needs (settings, boto3 clients, the X-Ray recorder, event
  models, the idempotency layer). This is the import *plus* the cost moved into the first call, so
  moved cost is not mistaken for removed cost. A module without ``prepare()`` (older code) reports
  only its import.

The probe runs CPython 3.13 with -S and only what a Lambda sandbox has on its path: the code dir
(functions/), the packages of functions/requirements-lambda.txt (the DependenciesLayer's python/)
and boto3 (the runtime's), installed once by pip for this machine under .aws-sam/bench-* (the .venv
would mislead: hundreds of packages there). It sets the variables Lambda sets (LAMBDA_TASK_ROOT,
_X_AMZN_TRACE_ID, ...), so Powertools enables tracing as with ``Tracing: Active`` and X-Ray takes
its Lambda code path. x86 here, arm64 in Lambda: compare against the target, not to the exact
Lambda init duration.

Sizes: the files sam build put in .aws-sam/build/<Function>/ and .aws-sam/build/DependenciesLayer/
(run `make sam-build` first), unzipped bytes and a deflate zip of them (what Lambda stores). Each
function's package is its own; the layer is shared by all five and counted once.

    .venv/bin/python bench/bench_cold_start.py [--runs 7] [--code-dir DIR]

``--code-dir`` times another copy of functions/ (e.g. an older commit:
``git archive HEAD functions | tar -x -C /tmp/old`` then ``--code-dir /tmp/old/functions``).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HANDLERS = {
    "IngestFunction": "pipeline.handlers.ingest",
    "StartTuningFunction": "pipeline.handlers.start_tuning",
    "TuningCompletedFunction": "pipeline.handlers.tuning_completed",
    "TrainingCompletedFunction": "pipeline.handlers.training_completed",
    "ClassifyFunction": "pipeline.handlers.classify",
    "ImportUrlFunction": "pipeline.handlers.import_url",
}
LAYERS = ["DependenciesLayer"]
ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_SESSION_TOKEN": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
    "AWS_LAMBDA_FUNCTION_NAME": "bench-function",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
    "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
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
PROBE = """
import sys, time
sys.path[:0] = {paths!r}
start = time.perf_counter()
import {module} as handler_module
imported = time.perf_counter()
prepare = getattr(handler_module, "prepare", None)
if prepare is not None:
    prepare()
print(imported - start, time.perf_counter() - start if prepare is not None else "nan")
"""
PYTHON313 = Path(os.environ.get("PYTHON313", "/root/.pyenv/versions/3.13.0/bin/python3"))
DEPS_DIR = REPO / ".aws-sam" / "bench-deps"
RUNTIME_DIR = REPO / ".aws-sam" / "bench-runtime"
RUNTIME_PACKAGES = ["boto3==1.44.8"]  # the python3.13 runtime ships boto3; same version as .venv


def ensure_sandbox_paths(code_dir: Path) -> list[str]:
    pip = [str(PYTHON313), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if not DEPS_DIR.is_dir():
        print(f"installing functions/requirements-lambda.txt into {DEPS_DIR} (once)")
        requirements = str(REPO / "functions" / "requirements-lambda.txt")
        subprocess.run([*pip, "--no-deps", "--target", str(DEPS_DIR), "-r", requirements], check=True)
    if not RUNTIME_DIR.is_dir():
        print(f"installing {RUNTIME_PACKAGES} into {RUNTIME_DIR} (once)")
        subprocess.run([*pip, "--target", str(RUNTIME_DIR), *RUNTIME_PACKAGES], check=True)
    return [str(code_dir), str(DEPS_DIR), str(RUNTIME_DIR)]


def cold_start_samples(
    module: str, runs: int, paths: list[str], code_dir: Path
) -> tuple[list[float], list[float]]:
    """(import seconds, import + prepare seconds) of `runs` fresh interpreters."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("PYTHON", "AWS_"))}
    env.update(ENV, LAMBDA_TASK_ROOT=str(code_dir))
    imports: list[float] = []
    ready: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        for run in range(runs + 1):  # the first run writes the .pyc files, as Lambda's first init would
            command = [str(PYTHON313), "-S", "-c", PROBE.format(module=module, paths=paths)]
            result = subprocess.run(command, env=env, cwd=scratch, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"{module} probe failed:\n{result.stderr}")
            import_s, ready_s = result.stdout.strip().splitlines()[-1].split()
            if run:
                imports.append(float(import_s))
                ready.append(float(ready_s))
    return imports, ready


def describe(samples: list[float]) -> str:
    if not samples or samples[0] != samples[0]:  # nan: no prepare()
        return f"{'-':>20s}"
    ms = [sample * 1000 for sample in samples]
    return f"{statistics.median(ms):6.0f} [{min(ms):5.0f}-{max(ms):5.0f}]"


def package_sizes(name: str) -> tuple[int, int] | None:
    root = REPO / ".aws-sam" / "build" / name
    if not root.is_dir():
        return None
    files = [path for path in sorted(root.rglob("*")) if path.is_file()]
    raw = sum(path.stat().st_size for path in files)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(root).as_posix())
    return raw, len(buffer.getvalue())


def size_text(name: str) -> str:
    sizes = package_sizes(name)
    return f"{sizes[0] / 1e6:12.2f} {sizes[1] / 1e6:10.2f}" if sizes else f"{'(no build)':>23s}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--code-dir", type=Path, default=REPO / "functions")
    args = parser.parse_args()
    code_dir = args.code_dir.resolve()
    paths = ensure_sandbox_paths(code_dir)
    print(f"code: {code_dir}; medians of {args.runs} fresh interpreters, [min-max]")
    header = f"{'function':26s} {'import ms':>20s} {'import+prepare ms':>20s}"
    header += f" {'unzipped MB':>12s} {'zipped MB':>10s}"
    print(header)
    # Sizes are those of the current build; they say nothing about another --code-dir.
    show_sizes = code_dir == (REPO / "functions").resolve()
    for function, module in HANDLERS.items():
        imports, ready = cold_start_samples(module, args.runs, paths, code_dir)
        sizes = size_text(function) if show_sizes else ""
        print(f"{function:26s} {describe(imports)} {describe(ready)} {sizes}")
    for layer in LAYERS if show_sizes else []:
        print(f"{layer + ' (shared)':26s} {'':20s} {'':20s} {size_text(layer)}")
    print("targets: import <= 150 ms, function package <= 10 MB (unzipped)")


if __name__ == "__main__":
    main()
