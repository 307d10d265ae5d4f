"""What shipping logs to CloudWatch Logs (localcloud/logs) costs the things that log, in one run.

    .venv/bin/python bench/bench_cloudwatch_logs.py [--lines 20000] [--invocations 200]

- shipper: ``put`` cost per line (the only thing a job or an invocation ever waits for), delivery
  throughput into a local moto, and PutLogEvents calls per 10,000 lines (batching);
- training job: a job whose script prints ``--lines`` lines, run through the emulator with no
  shipper (files only) and with one into moto, in the order A B B A (a shared machine's load drifts);
  wall time from CreateTrainingJob to Completed, which includes the final flush;
- Lambda: median synchronous invocation time of a handler that prints three lines, with and without
  a shipper, interleaved.

Compare ratios from one run only; the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3

from localcloud.lambdas.runner import FunctionSpec, LambdaRunner, base_lambda_environment
from localcloud.logs.shipper import CLIENT_CONFIG, LogShipper
from localcloud.sagemaker.server import SageMakerServer
from tests.support.sagemaker import client, local_s3, tar_gz, training_job_request

BUCKET = "bench-logs"
SCRIPT = """
import argparse, os, pathlib
parser = argparse.ArgumentParser()
parser.add_argument("--lines", type=int)
args = parser.parse_args()
for i in range(args.lines):
    print(f"step {i} loss={1.0 / (i + 1):.6f} and more text, as a training log line has", flush=True)
(pathlib.Path(os.environ["SM_MODEL_DIR"]) / "model.txt").write_text("ok")
"""
HANDLER = "def talk(event, context):\n    print('one')\n    print('two')\n    print('three')\n    return 1\n"


def shipper_client(url: str) -> Any:
    """The client the local cloud gives its shipper (localcloud/cloud.py)."""
    return boto3.client(
        "logs",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=CLIENT_CONFIG,
    )


def bench_shipper(url: str, lines: int) -> None:
    shipper = LogShipper(lambda: shipper_client(url))
    stream = shipper.open_stream("/bench/shipper", "s")
    started = time.perf_counter()
    for i in range(lines):
        stream.put(f"line {i} " + "x" * 80)
    enqueued = time.perf_counter() - started
    stream.flush(timeout_s=300)
    delivered = time.perf_counter() - started
    stream.close()
    print(
        f"shipper: put {enqueued / lines * 1e6:.1f} us/line; {lines} lines delivered in {delivered:.2f} s "
        f"({lines / delivered:,.0f} lines/s) in {shipper.put_calls} PutLogEvents calls "
        f"({shipper.put_calls / lines * 10_000:.1f} per 10,000 lines); dropped {shipper.dropped_events}"
    )


def run_job(url: str, state: Path, name: str, lines: int, logs: LogShipper | None) -> float:
    server = SageMakerServer(state_dir=state / name, s3_endpoint_url=url, logs=logs).start()
    try:
        sm = client("sagemaker", server.url)
        started = time.perf_counter()
        sm.create_training_job(
            **training_job_request(
                name,
                BUCKET,
                f"s3://{BUCKET}/code/source.tar.gz",
                hyperparameters={"lines": str(lines)},
                channels={"train": f"s3://{BUCKET}/data/"},
            )
        )
        while sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] == "InProgress":
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        status = sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
        assert status == "Completed", status
        return elapsed
    finally:
        server.stop()


def bench_training(url: str, lines: int) -> None:
    s3 = client("s3", url)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="code/source.tar.gz", Body=tar_gz({"train.py": SCRIPT}))
    s3.put_object(Bucket=BUCKET, Key="data/x.txt", Body=b"x")
    times: dict[str, list[float]] = {"files only": [], "CloudWatch": []}
    with tempfile.TemporaryDirectory() as tmp:
        for n, kind in enumerate(["files only", "CloudWatch", "CloudWatch", "files only"]):
            shipper = LogShipper(lambda: shipper_client(url)) if kind == "CloudWatch" else None
            times[kind].append(run_job(url, Path(tmp), f"bench-{n}", lines, shipper))
            if shipper:
                assert shipper.dropped_events == 0
                shipper.close()
    base, logged = statistics.mean(times["files only"]), statistics.mean(times["CloudWatch"])
    print(
        f"training job, {lines} lines: files only {base:.2f} s, with CloudWatch Logs {logged:.2f} s "
        f"(ratio {logged / base:.3f}; runs {times})"
    )


def bench_lambda(url: str, invocations: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp) / "code"
        code.mkdir()
        (code / "app.py").write_text(HANDLER)
        arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
        spec = FunctionSpec(
            logical_id="Bench",
            name="bench",
            arn=arn,
            handler="app.talk",
            code_dir=code,
            environment=base_lambda_environment("bench", arn, 128, 10, "us-east-1"),
            timeout_s=10,
        )
        runners: dict[str, Any] = {}
        for kind, shipper in (("files only", None), ("CloudWatch", LogShipper(lambda: shipper_client(url)))):
            runners[kind] = LambdaRunner(
                {"bench": spec},
                log_dir=Path(tmp) / kind.replace(" ", "-"),
                send_to_destination=lambda d, m: None,
                log_shipper=shipper,
            )
            (Path(tmp) / kind.replace(" ", "-")).mkdir()
            runners[kind].invoke("bench", {})  # the cold start, not measured
        samples: dict[str, list[float]] = {kind: [] for kind in runners}
        for _ in range(invocations):
            for kind, runner in runners.items():
                started = time.perf_counter()
                runner.invoke("bench", {})
                samples[kind].append(time.perf_counter() - started)
        for runner in runners.values():
            runner.close()
    base = statistics.median(samples["files only"])
    logged = statistics.median(samples["CloudWatch"])
    print(
        f"Lambda invoke (warm, 3 lines), median of {invocations}: files only {base * 1e3:.2f} ms, "
        f"with CloudWatch Logs {logged * 1e3:.2f} ms (ratio {logged / base:.3f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--invocations", type=int, default=200)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with local_s3() as url:
        bench_shipper(url, args.lines)
        bench_lambda(url, args.invocations)
        bench_training(url, args.lines)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
