"""Local endpoint latency vs a bare forward pass, for one 224 px image.

Builds a real model.tar.gz (ResNet18 + 133-class head from training/dogclf, random weights, and
training/inference.py as code/), deploys it on the local SageMaker emulator (moto S3 + emulator +
model server process), and times sequential InvokeEndpoint calls through boto3's sagemaker-runtime
client. The baseline runs in one training-interpreter process: the same model loaded by the same
model_fn, timing ``model(x)`` on the preprocessed 1x3x224x224 tensor (and, for the breakdown, the
whole input_fn -> predict_fn -> output_fn pipeline), in small batches alternating with the endpoint
calls so background load hits every path alike. A no-op model's endpoint gives the transport cost
alone. Both paths use the same torch thread count (--threads, default 1). Prints p50/p99 and the
ratio endpoint/bare (target <= 1.3x).

    .venv/bin/python bench/bench_endpoint.py [--requests 60] [--warmup 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from localcloud.sagemaker.models import default_training_python  # noqa: E402
from localcloud.sagemaker.server import SageMakerServer  # noqa: E402
from localcloud.sagemaker.testing import ROLE_ARN, client, local_s3, tar_gz, tar_gz_directory  # noqa: E402

NUM_CLASSES = 133
IMAGE_SIZE = 224
BATCH = 5

BUILD_MODEL = """
import json, sys, torch
from dogclf.model import build_for_inference
out = sys.argv[1]
torch.manual_seed(0)
model = build_for_inference(%(classes)d)
torch.save(model.state_dict(), f"{out}/model.pth")
json.dump([f"{i:03d}.Class_{i}" for i in range(1, %(classes)d + 1)], open(f"{out}/classes.json", "w"))
meta = {"arch": "resnet18", "image_size": %(size)d, "num_classes": %(classes)d}
json.dump(meta, open(f"{out}/model_meta.json", "w"))
"""

# The baseline worker: loads the model once, then answers "forward N" / "pipeline N" on stdin with
# the N latencies in ms, so bare and endpoint batches can alternate under the same machine load.
BASELINE = """
import json, sys, threading, time, torch
sys.path.insert(0, sys.argv[1] + "/code")
import inference
model_dir, image_path = sys.argv[1], sys.argv[2]
loaded = inference.model_fn(model_dir)
body = open(image_path, "rb").read()
x = loaded["transform"](inference.input_fn(body, "image/jpeg")["image"]).unsqueeze(0)

def forward():
    with torch.no_grad():
        loaded["model"](x)

def pipeline():
    prediction = inference.predict_fn(inference.input_fn(body, "image/jpeg"), loaded)
    inference.output_fn(prediction, "application/json")

print(json.dumps({"threads": torch.get_num_threads()}), flush=True)
def measure(run, count, timings):
    for _ in range(count):
        start = time.perf_counter()
        run()
        timings.append((time.perf_counter() - start) * 1000)

for line in sys.stdin:
    kind, count = line.split()
    run = {"forward": forward, "pipeline": pipeline, "forward-main": forward}[kind]
    timings = []
    if kind == "forward-main":
        measure(run, int(count), timings)
    else:
        # Like the model server, which runs each request on a request thread, not the main one
        # (torch's intra-op pool behaves differently there on an oversubscribed CPU).
        worker = threading.Thread(target=measure, args=(run, int(count), timings))
        worker.start()
        worker.join()
    print(json.dumps(timings), flush=True)
"""


class BaselineWorker:
    def __init__(self, python: Path, model_dir: Path, image_path: Path, threads: int) -> None:
        self.process = subprocess.Popen(
            [str(python), "-c", BASELINE, str(model_dir), str(image_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)},
        )
        self.threads = json.loads(self._read())["threads"]

    def _read(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("baseline worker exited")
        return line

    def run(self, kind: str, count: int) -> list[float]:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{kind} {count}\n")
        self.process.stdin.flush()
        return list(json.loads(self._read()))

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


# A model that does nothing: its endpoint latency is the emulator + model server transport alone.
NOOP_INFERENCE = """
def model_fn(model_dir):
    return None

def input_fn(body, content_type):
    return len(body)

def predict_fn(data, model):
    return data

def output_fn(prediction, accept):
    return '{"bytes": %d}' % prediction
"""


def noop_latencies(sm: Any, runtime: Any, body: bytes, warmup: int, requests: int) -> list[float]:
    sm.create_model(
        ModelName="noop",
        ExecutionRoleArn=ROLE_ARN,
        PrimaryContainer={"Image": "local", "ModelDataUrl": "s3://bench/noop/model.tar.gz"},
    )
    sm.create_endpoint_config(
        EndpointConfigName="noop",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "noop",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sm.create_endpoint(EndpointName="noop", EndpointConfigName="noop")
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName="noop", WaiterConfig={"Delay": 1, "MaxAttempts": 180}
    )
    timings = []
    for i in range(warmup + requests):
        start = time.perf_counter()
        runtime.invoke_endpoint(EndpointName="noop", Body=body, ContentType="image/jpeg")["Body"].read()
        if i >= warmup:
            timings.append((time.perf_counter() - start) * 1000)
    return timings


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def write_image(path: Path) -> None:
    import random

    from PIL import Image

    rng = random.Random(0)
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE))
    image.putdata(
        [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(IMAGE_SIZE**2)]
    )
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    path.write_bytes(buffer.getvalue())


def build_model_dir(python: Path, model_dir: Path) -> None:
    (model_dir / "code").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "training" / "inference.py", model_dir / "code" / "inference.py")
    shutil.copytree(
        REPO_ROOT / "training" / "dogclf",
        model_dir / "code" / "dogclf",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    script = BUILD_MODEL % {"classes": NUM_CLASSES, "size": IMAGE_SIZE}
    subprocess.run(
        [str(python), "-c", script, str(model_dir)],
        check=True,
        timeout=300,
        env={"PYTHONPATH": str(model_dir / "code"), "PATH": "/usr/bin:/bin"},
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads for both paths (OMP_NUM_THREADS); 2 threads on a busy 2-core box "
        "makes OpenMP spin-wait and the timings meaningless",
    )
    args = parser.parse_args()
    python = default_training_python()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir, image_path = work / "model", work / "dog.jpg"
        build_model_dir(python, model_dir)
        write_image(image_path)
        body = image_path.read_bytes()

        with local_s3() as s3_url:
            s3 = client("s3", s3_url)
            s3.create_bucket(Bucket="bench")
            s3.put_object(Bucket="bench", Key="model/model.tar.gz", Body=tar_gz_directory(model_dir))
            s3.put_object(
                Bucket="bench", Key="noop/model.tar.gz", Body=tar_gz({"code/inference.py": NOOP_INFERENCE})
            )
            server = SageMakerServer(
                state_dir=work / "state", s3_endpoint_url=s3_url, training_python=python
            ).start()
            try:
                sm = client("sagemaker", server.url)
                sm.create_model(
                    ModelName="bench",
                    ExecutionRoleArn=ROLE_ARN,
                    PrimaryContainer={
                        "Image": "local",
                        "ModelDataUrl": "s3://bench/model/model.tar.gz",
                        "Environment": {
                            "OMP_NUM_THREADS": str(args.threads),
                            "MKL_NUM_THREADS": str(args.threads),
                        },
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
                    EndpointName="bench", WaiterConfig={"Delay": 1, "MaxAttempts": 180}
                )
                startup = time.perf_counter() - started
                runtime = client("sagemaker-runtime", server.url)
                worker = BaselineWorker(python, model_dir, image_path, args.threads)

                def invoke_batch(count: int) -> list[float]:
                    timings = []
                    for _ in range(count):
                        start = time.perf_counter()
                        response = runtime.invoke_endpoint(
                            EndpointName="bench",
                            Body=body,
                            ContentType="image/jpeg",
                            Accept="application/json",
                        )
                        prediction = json.loads(response["Body"].read())
                        timings.append((time.perf_counter() - start) * 1000)
                    assert len(prediction["predictions"]) == 3
                    return timings

                worker.run("forward", args.warmup)
                worker.run("pipeline", args.warmup)
                invoke_batch(args.warmup)
                forward: list[float] = []
                pipeline: list[float] = []
                latencies: list[float] = []
                forward_main: list[float] = []
                # Alternate small batches so background load hits all three paths alike.
                for _ in range(max(1, args.requests // BATCH)):
                    forward += worker.run("forward", BATCH)
                    latencies += invoke_batch(BATCH)
                    pipeline += worker.run("pipeline", BATCH)
                    forward_main += worker.run("forward-main", BATCH)
                threads = worker.threads
                noop = noop_latencies(sm, runtime, body, args.warmup, args.requests)
                worker.close()
            finally:
                server.stop()

    rows = [
        ("bare model(x) forward (request-like thread)", forward),
        ("bare model(x) forward (main thread)", forward_main),
        ("in-process input_fn+predict_fn+output_fn", pipeline),
        ("local endpoint (boto3 InvokeEndpoint)", latencies),
    ]
    print(
        f"endpoint latency, one {IMAGE_SIZE}px JPEG, ResNet18/{NUM_CLASSES} classes, torch threads={threads}"
    )
    print(f"{'path':45s} {'p50 ms':>9s} {'p99 ms':>9s} {'mean ms':>9s}   n={len(latencies)}")
    for label, values in rows:
        print(
            f"{label:45s} {percentile(values, 50):9.2f} {percentile(values, 99):9.2f}"
            f" {statistics.mean(values):9.2f}"
        )
    ratio_p50 = percentile(latencies, 50) / percentile(forward, 50)
    ratio_p99 = percentile(latencies, 99) / percentile(forward, 99)
    print(f"ratio endpoint/bare forward: p50 {ratio_p50:.2f}x  p99 {ratio_p99:.2f}x  (target <= 1.3x)")
    overhead = percentile(latencies, 50) - percentile(pipeline, 50)
    print(
        f"ratio endpoint/in-process handlers p50: {percentile(latencies, 50) / percentile(pipeline, 50):.2f}x"
        " "
        f"(transport overhead {overhead:.2f} ms)"
    )
    print(
        f"transport overhead alone (no-op model, same image): p50 {percentile(noop, 50):.2f} ms, "
        f"p99 {percentile(noop, 99):.2f} ms"
    )
    print(f"endpoint start (CreateEndpoint -> InService): {startup:.1f} s")


if __name__ == "__main__":
    main()
