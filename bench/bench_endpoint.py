"""Local endpoint on AWS's serving stack: start-up time, latency and memory.

Builds a real model dir (ResNet18 + a --classes head from training/dogclf, random weights, at
--image-size, with training/inference.py as code/, as save_artifacts lays it out) and serves it the
way the emulator does: ``localcloud.sagemaker.runners.endpoint.ModelServerProcess`` starts TorchServe 0.12
with sagemaker-pytorch-inference's handler service in the base env (the inference image).

1. Straight at TorchServe, from process start: seconds until ``/ping`` answers 200, and until the first
   ``/invocations`` of a JPEG answers 200 (the model is loaded); then RSS/PSS of the launcher (the
   toolkit's entrypoint process), the JVM and the Python worker(s); then p50/p95 over --requests
   sequential JPEG invocations.
2. Through the emulator (moto S3 + SageMaker emulator + boto3 sagemaker-runtime): CreateEndpoint ->
   InService seconds, and p50/p95 of --requests sequential InvokeEndpoint calls.

    .venv/bin/python bench/bench_endpoint.py [--requests 50] [--image-size 224] [--classes 133] [--threads 1]
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from localcloud.environment.containerenv import base_python
from localcloud.sagemaker.runners.endpoint import ModelServerProcess, live_group_members
from localcloud.sagemaker.server import SageMakerServer
from tests.support.sagemaker import ROLE_ARN, client, local_s3, tar_gz_directory

REPO_ROOT = Path(__file__).resolve().parents[1]

BUILD_MODEL = r"""
import json, sys, torch
from pathlib import Path
sys.path.insert(0, sys.argv[1])  # the base interpreter (the image) has no dogclf: training/ from argv
from dogclf.artifacts import copy_serving_code
from dogclf.model import build_for_inference
out, classes, size = Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
out.mkdir(parents=True)
torch.manual_seed(0)
torch.save(build_for_inference(classes).state_dict(), out / "model.pth")
(out / "classes.json").write_text(json.dumps([f"{i:03d}.Class_{i}" for i in range(1, classes + 1)]))
meta = {"arch": "resnet18", "image_size": size, "num_classes": classes}
(out / "model_meta.json").write_text(json.dumps(meta))
copy_serving_code(out / "code")
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def jpeg(size: int) -> bytes:
    from PIL import Image

    rng = random.Random(0)
    image = Image.new("RGB", (size, size))
    image.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(size * size)])
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def memory_by_role(pgid: int) -> dict[str, tuple[float, float]]:
    """(RSS, PSS) MiB per process role in the endpoint's process group. RSS counts the torch libraries
    the launcher and the worker share in both; PSS splits shared pages between them."""
    roles: dict[str, tuple[float, float]] = {}
    for pid in live_group_members(pgid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        fields = {line.split(":")[0]: int(line.split()[1]) for line in rollup.splitlines()[1:] if ":" in line}
        if "org.pytorch.serve.ModelServer" in cmdline:
            role = "JVM (TorchServe frontend)"
        elif "model_service_worker" in cmdline:
            role = "Python model worker(s)"
        elif "localcloud.modelserver" in cmdline:
            role = "Python launcher (toolkit entrypoint)"
        else:
            role = "other"
        rss, pss = roles.get(role, (0.0, 0.0))
        roles[role] = (rss + fields.get("Rss", 0) / 1024, pss + fields.get("Pss", 0) / 1024)
    return roles


def timed(call, count: int) -> list[float]:
    timings = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def direct(model_dir: Path, body: bytes, requests: int, warmup: int, environment: dict[str, str]) -> None:
    server = ModelServerProcess("bench", model_dir, environment, model_dir.parent / "server.log")
    started = time.perf_counter()
    server.start()
    assert server.process is not None
    ping_at = first_200_at = None
    headers = {"Content-Type": "image/jpeg", "Accept": "application/json"}
    try:
        while first_200_at is None:
            if server.process.poll() is not None:
                raise SystemExit(f"model server exited:\n{server.log_tail()}")
            try:
                if ping_at is None and server.request("GET", "/ping", b"", {}, timeout=5)[0] == 200:
                    ping_at = time.perf_counter() - started
                if ping_at is not None and server.request("POST", "/invocations", body, headers)[0] == 200:
                    first_200_at = time.perf_counter() - started
            except OSError:
                pass  # not listening yet
            time.sleep(0.05)  # a benchmark's poll interval (resolution of the start-up numbers)
        memory = memory_by_role(server.process.pid)

        def invoke() -> None:
            status, _, payload = server.request("POST", "/invocations", body, headers)
            assert status == 200, payload

        timed(invoke, warmup)
        latencies = timed(invoke, requests)
    finally:
        server.stop()
    print(
        f"TorchServe direct: /ping 200 after {ping_at:.1f} s, "
        f"first /invocations 200 after {first_200_at:.1f} s"
    )
    print(f"  {'memory (MiB)':44s} {'RSS':>6s} {'PSS':>6s}")
    for role, (rss, pss) in sorted(memory.items()):
        print(f"  {role:44s} {rss:6.0f} {pss:6.0f}")
    total_rss, total_pss = (sum(values) for values in zip(*memory.values(), strict=True))
    print(f"  {'total per endpoint':44s} {total_rss:6.0f} {total_pss:6.0f}")
    print(
        f"  /invocations latency over {requests} sequential JPEGs: p50 {percentile(latencies, 50):.1f} ms, "
        f"p95 {percentile(latencies, 95):.1f} ms, mean {statistics.mean(latencies):.1f} ms"
    )


def through_emulator(
    model_dir: Path, state_dir: Path, body: bytes, requests: int, warmup: int, environment: dict[str, str]
) -> None:
    with local_s3() as s3_url:
        s3 = client("s3", s3_url)
        s3.create_bucket(Bucket="bench")
        s3.put_object(Bucket="bench", Key="model/model.tar.gz", Body=tar_gz_directory(model_dir))
        server = SageMakerServer(state_dir=state_dir, s3_endpoint_url=s3_url).start()
        try:
            sm = client("sagemaker", server.url)
            sm.create_model(
                ModelName="bench",
                ExecutionRoleArn=ROLE_ARN,
                PrimaryContainer={
                    "Image": "pytorch-inference:local",
                    "ModelDataUrl": "s3://bench/model/model.tar.gz",
                },
            )
            sm.create_endpoint_config(
                EndpointConfigName="bench",
                ProductionVariants=[
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": "bench",
                        "InstanceType": "ml.m5.large",
                        "InitialInstanceCount": 1,
                    }
                ],
            )
            started = time.perf_counter()
            sm.create_endpoint(EndpointName="bench", EndpointConfigName="bench")
            sm.get_waiter("endpoint_in_service").wait(
                EndpointName="bench", WaiterConfig={"Delay": 1, "MaxAttempts": 300}
            )
            in_service = time.perf_counter() - started
            runtime = client("sagemaker-runtime", server.url)

            def invoke() -> None:
                response = runtime.invoke_endpoint(
                    EndpointName="bench", Body=body, ContentType="image/jpeg", Accept="application/json"
                )
                assert len(json.loads(response["Body"].read())["predictions"]) == 3

            timed(invoke, warmup)
            latencies = timed(invoke, requests)
        finally:
            server.stop()
    print(f"Emulator: CreateEndpoint -> InService {in_service:.1f} s (1 s waiter resolution)")
    print(
        f"  InvokeEndpoint latency over {requests} sequential JPEGs: p50 {percentile(latencies, 50):.1f} ms, "
        f"p95 {percentile(latencies, 95):.1f} ms, mean {statistics.mean(latencies):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--classes", type=int, default=133)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OMP_NUM_THREADS for the model worker (the model's Environment); more threads than free "
        "cores make OpenMP spin-wait on a busy machine",
    )
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = work / "direct" / "model"
        subprocess.run(
            [
                str(base_python()),
                "-c",
                BUILD_MODEL,
                str(REPO_ROOT / "training"),
                str(model_dir),
                str(args.classes),
                str(args.image_size),
            ],
            check=True,
            timeout=300,
        )
        body = jpeg(args.image_size)
        print(
            f"model: ResNet18/{args.classes} classes, {args.image_size} px; request: one "
            f"{args.image_size} px JPEG ({len(body)} bytes); TorchServe 0.12 + sagemaker-pytorch-inference"
        )
        environment = {"OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
        load = os.getloadavg()[0]
        print(f"torch threads {args.threads}; load average {load:.1f} on {os.cpu_count()} CPUs at start")
        direct(model_dir, body, args.requests, args.warmup, environment)
        through_emulator(model_dir, work / "state", body, args.requests, args.warmup, environment)


if __name__ == "__main__":
    main()
