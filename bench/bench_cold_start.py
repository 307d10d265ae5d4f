"""Cold start of each Lambda handler and the built size of each function package and layer.

Three timings per handler, each the median of N fresh interpreters (min-max in brackets):

- init: ``import pipeline.handlers.<name>``, what Lambda runs in its init phase (and what SnapStart
  snapshots): settings, boto3 clients, Powertools' Logger/Tracer/Metrics and idempotency layer.
- first invoke: ``handler(<events/*.json>, context)`` right after init, up to the response of its
  first AWS call. AWS is a stub on 127.0.0.1 (AWS_ENDPOINT_URL) that answers every request with an
  HTTP 400, so each invocation ends at its first AWS call with a ClientError (the "outcome" column
  names the exception; it must be an AWS error, not a bug). What the handler creates lazily on its
  first call (older code did settings, clients, X-Ray and the idempotency layer there) lands here.
- total: init + first invoke, the cold start a user waits for. Moving work from init into the first
  call leaves it unchanged; only removing work lowers it.

The probe runs CPython 3.13 with -S and only what a Lambda sandbox has on its path: the code dir
(functions/), the packages of functions/requirements-lambda.txt (the DependenciesLayer's python/)
and boto3 (the runtime's), installed once by pip for this machine under .aws-sam/bench-* (the .venv
would mislead: hundreds of packages there). It sets the variables Lambda sets (LAMBDA_TASK_ROOT,
_X_AMZN_TRACE_ID, ...), so Powertools enables tracing as with ``Tracing: Active`` and X-Ray takes
its Lambda code path. x86 here, arm64 in Lambda: compare runs of this script with each other, not
with Lambda's init duration.

Sizes: the files sam build put in .aws-sam/build/<Function>/ and .aws-sam/build/DependenciesLayer/
(run `make sam-build` first), unzipped bytes and a deflate zip of them (what Lambda stores). Each
function's package is its own; the layer is shared by all functions and counted once.

    .venv/bin/python bench/bench_cold_start.py [--runs 7] [--code-dir DIR] [--code-dir DIR2 ...]

``--code-dir`` times another copy of functions/ (e.g. an older commit:
``git archive HEAD functions | tar -x -C /tmp/old`` then ``--code-dir /tmp/old/functions``); given
several times, the copies take turns run by run (so a change in the machine's load hits them alike)
and their totals are compared.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import tempfile
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# function -> (handler module, its sample event under events/)
HANDLERS = {
    "IngestFunction": ("pipeline.handlers.ingest", "ingest.json"),
    "DatasetReadyFunction": ("pipeline.handlers.dataset_ready", "dataset_ready.json"),
    "FeaturesCompletedFunction": ("pipeline.handlers.features_completed", "features_completed.json"),
    "TuningCompletedFunction": ("pipeline.handlers.tuning_completed", "tuning_completed.json"),
    "TrainingCompletedFunction": ("pipeline.handlers.training_completed", "training_completed.json"),
    "ClassifyFunction": ("pipeline.handlers.classify", "classify_direct.json"),
    "ImportUrlFunction": ("pipeline.handlers.import_url", "import_url.json"),
    "EndpointStateFunction": ("pipeline.handlers.endpoint_state", "endpoint_state.json"),
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
    "AWS_MAX_ATTEMPTS": "1",  # one request per call: the stub's 400s are not retried anyway
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
    "POWERTOOLS_LOGGER_LOG_EVENT": "false",
    "URL_IMPORT_ALLOW_LOOPBACK_HTTP": "true",  # import_url downloads from the stub, never the internet
}
PROBE = """
import json, sys, time
sys.path[:0] = {paths!r}  # as Lambda's runtime (-S): the function's dir, the layer, the runtime's
start = time.perf_counter()
import {module} as handler_module
initialised = time.perf_counter()

class Context:
    function_name = "bench-function"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench-function"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/bench-function"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self):
        return 600_000

try:
    handler_module.handler(json.loads({event!r}), Context())
    outcome = "returned"
except Exception as error:  # the stub's 400: a ClientError, or Powertools' wrapper of one
    outcome = type(error).__name__
done = time.perf_counter()
print(initialised - start, done - initialised, outcome)
"""
PYTHON313 = Path(os.environ.get("PYTHON313", "/root/.pyenv/versions/3.13.0/bin/python3"))
DEPS_DIR = REPO / ".aws-sam" / "bench-deps"
RUNTIME_DIR = REPO / ".aws-sam" / "bench-runtime"
RUNTIME_PACKAGES = ["boto3==1.44.8"]  # the python3.13 runtime ships boto3; same version as .venv


class StubAws(BaseHTTPRequestHandler):
    """Every AWS API (and the import URL) answers 400: the invocation ends at its first call."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = b"<Error><Code>BenchStub</Code><Message>bench stub</Message></Error>"
        self.send_response(400)
        self.send_header("x-amzn-ErrorType", "BenchStub")
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _answer  # noqa: N815 (http.server's names)

    def log_message(self, format: str, *args: object) -> None:
        pass


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


def sample_event(name: str, stub_url: str) -> str:
    event = json.loads((REPO / "events" / name).read_text()) if (REPO / "events" / name).is_file() else {}
    if "url" in event:
        event["url"] = f"{stub_url}/dataset.zip"
    return json.dumps(event)


@dataclass
class Samples:
    """One function under one copy of the code: seconds per fresh interpreter."""

    inits: list[float] = field(default_factory=list)
    invokes: list[float] = field(default_factory=list)
    outcomes: set[str] = field(default_factory=set)

    @property
    def totals(self) -> list[float]:
        return [init + invoke for init, invoke in zip(self.inits, self.invokes, strict=True)]


def probe(
    module: str, event: str, paths: list[str], code_dir: Path, stub_url: str
) -> tuple[float, float, str]:
    """(init seconds, first-invocation seconds, outcome) of one fresh interpreter."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("PYTHON", "AWS_"))}
    env.update(ENV, LAMBDA_TASK_ROOT=str(code_dir), AWS_ENDPOINT_URL=stub_url)
    with tempfile.TemporaryDirectory() as scratch:
        command = [str(PYTHON313), "-S", "-c", PROBE.format(module=module, paths=paths, event=event)]
        result = subprocess.run(command, env=env, cwd=scratch, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{module} probe failed:\n{result.stderr}")
    init_s, invoke_s, outcome = result.stdout.strip().splitlines()[-1].split()
    return float(init_s), float(invoke_s), outcome


def has_module(code_dir: Path, module: str) -> bool:
    return (code_dir / (module.replace(".", "/") + ".py")).is_file()


def measure(code_dirs: list[Path], runs: int, stub_url: str) -> dict[Path, dict[str, Samples]]:
    """Every function under every copy of the code. The copies take turns run by run, so a change
    in the machine's load (other processes) hits them alike instead of biasing one table."""
    paths = {code_dir: ensure_sandbox_paths(code_dir) for code_dir in code_dirs}
    results: dict[Path, dict[str, Samples]] = {code_dir: {} for code_dir in code_dirs}
    for function, (module, event_name) in HANDLERS.items():
        event = sample_event(event_name, stub_url)
        present = [code_dir for code_dir in code_dirs if has_module(code_dir, module)]
        for run in range(runs + 1):  # the first run writes the .pyc files, as Lambda's first init would
            for code_dir in present:
                init_s, invoke_s, outcome = probe(module, event, paths[code_dir], code_dir, stub_url)
                if run:
                    samples = results[code_dir].setdefault(function, Samples())
                    samples.inits.append(init_s)
                    samples.invokes.append(invoke_s)
                    samples.outcomes.add(outcome)
    return results


def describe(samples: list[float]) -> str:
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


def print_table(code_dir: Path, results: dict[str, Samples], runs: int) -> None:
    print(f"\ncode: {code_dir}; medians of {runs} fresh interpreters, [min-max] ms")
    header = f"{'function':26s} {'init':>17s} {'first invoke':>17s} {'total':>17s}  outcome"
    # Sizes are those of the current build; they say nothing about another --code-dir.
    show_sizes = code_dir == (REPO / "functions").resolve()
    if show_sizes:
        header += f"  {'unzipped MB':>12s} {'zipped MB':>10s}"
    print(header)
    for function, samples in results.items():
        line = f"{function:26s} {describe(samples.inits)} {describe(samples.invokes)}"
        line += f" {describe(samples.totals)}  {','.join(sorted(samples.outcomes))}"
        print(line + (f"  {size_text(function)}" if show_sizes else ""))
    for layer in LAYERS if show_sizes else []:
        print(f"{layer + ' (shared)':26s} {'':>17s} {'':>17s} {'':>17s}  {'':7s}  {size_text(layer)}")
    if show_sizes:
        print("target: function package <= 10 MB (unzipped)")


def print_comparison(code_dirs: list[Path], results: dict[Path, dict[str, Samples]]) -> None:
    base = {function: statistics.median(s.totals) * 1000 for function, s in results[code_dirs[0]].items()}
    print(f"\ntotal (init + first invoke), median ms, against {code_dirs[0]}")
    for code_dir in code_dirs[1:]:
        totals = {function: statistics.median(s.totals) * 1000 for function, s in results[code_dir].items()}
        shared = [function for function in totals if function in base]
        for function in shared:
            ratio = totals[function] / base[function]
            print(f"{function:26s} {base[function]:7.0f} -> {totals[function]:7.0f}  x{ratio:.2f}")
        before = sum(base[function] for function in shared)
        after = sum(totals[function] for function in shared)
        label = f"sum of {len(shared)}"
        print(f"{label:26s} {before:7.0f} -> {after:7.0f}  x{after / before:.2f}  ({code_dir})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--code-dir", type=Path, action="append")
    args = parser.parse_args()
    code_dirs = [path.resolve() for path in args.code_dir or [REPO / "functions"]]
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubAws)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stub_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        results = measure(code_dirs, args.runs, stub_url)
    finally:
        server.shutdown()
    for code_dir in code_dirs:
        print_table(code_dir, results[code_dir], args.runs)
    if len(code_dirs) > 1:
        print_comparison(code_dirs, results)


if __name__ == "__main__":
    main()
