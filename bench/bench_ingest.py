"""Streaming ingest vs a naive ingest against a local S3 (moto server on 127.0.0.1).

naive: download the whole zip, extractall to disk, put every file one after the other.
streaming: pipeline.ingest.service.ingest_upload (ranged GETs, tar shards by multipart upload, no temp files).

Each run is a fresh subprocess (its peak RSS is its own) against a fresh moto server. The archive is
generated (incompressible JPEG-shaped members, dogImages layout). Prints wall time, peak RSS and
the speed-up; the streaming ingest also runs on a half-size archive to show its RSS stays flat.

    .venv/bin/python bench/bench_ingest.py [--members 5200] [--member-kb 40]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from localcloud.shared import free_port

REPO = Path(__file__).resolve().parents[1]

BUCKET = "bench-datasets"
KEY = "uploads/bench.zip"


def generate_archive(path: Path, members: int, member_kb: int, classes: int = 40) -> None:
    """dogImages-shaped zip of random (incompressible) JPEG-looking members: SOI ... EOI."""
    rng = random.Random(0)
    splits = [("train", 0.8), ("valid", 0.1), ("test", 0.1)]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        index = 0
        for split, share in splits:
            count = max(classes, int(members * share))
            for number in range(count):
                class_dir = f"{number % classes + 1:03d}.Breed_{number % classes + 1}"
                body = b"\xff\xd8\xff\xe0" + rng.randbytes(member_kb * 1024 - 6) + b"\xff\xd9"
                archive.writestr(f"dogImages/{split}/{class_dir}/img_{index:06d}.jpg", body)
                index += 1


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, url
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("moto server did not start")


def aws_env(url: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_ENDPOINT_URL")}
    env.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_ENDPOINT_URL=url,  # every service of this process goes to the local server
        DATASET_BUCKET=BUCKET,
        ARTIFACTS_BUCKET="bench-artifacts",
        INFERENCE_BUCKET="bench-inference",
        IDEMPOTENCY_TABLE="unused",
        NOTIFICATION_TOPIC_ARN="arn:aws:sns:us-east-1:123456789012:bench",
        SAGEMAKER_ROLE_ARN="arn:aws:iam::123456789012:role/bench",
        TRAINING_CODE_DIR=str(REPO / "training"),
        POWERTOOLS_TRACE_DISABLED="1",
        POWERTOOLS_LOG_LEVEL="WARNING",
        POWERTOOLS_SERVICE_NAME="bench",
        PYTHONPATH=str(REPO / "functions"),
    )
    return env


# ------------------------------------------------------------------ the two ingests (run in children)


def run_naive() -> dict[str, float]:
    import boto3

    s3 = boto3.client("s3")
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="naive-ingest-"))
    try:
        archive_path = workdir / "upload.zip"
        s3.download_file(BUCKET, KEY, str(archive_path))
        with zipfile.ZipFile(archive_path) as archive:
            archive.extractall(workdir / "extracted")
        written = 0
        for path in sorted((workdir / "extracted").rglob("*")):
            if path.is_file():
                relative = path.relative_to(workdir / "extracted").as_posix().split("/", 1)[1]
                s3.put_object(Bucket=BUCKET, Key=f"datasets/naive/{relative}", Body=path.read_bytes())
                written += 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"seconds": time.perf_counter() - started, "written": written}


def run_streaming() -> dict[str, float]:
    import boto3

    from pipeline.adapters.notify import Notifier
    from pipeline.adapters.s3 import S3Store
    from pipeline.ingest.service import Upload, ingest_upload
    from pipeline.settings import Settings

    boto3.client("sns").create_topic(Name="bench")
    settings = Settings.from_env()
    started = time.perf_counter()
    report = ingest_upload(
        Upload(BUCKET, KEY, "bench"), settings, S3Store(), Notifier(settings.notification_topic_arn)
    )
    if report["status"] != "accepted":
        raise RuntimeError(report)
    return {"seconds": time.perf_counter() - started, "written": report["extraction"]["written"]}


def child(mode: str) -> None:
    result = run_naive() if mode == "naive" else run_streaming()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    print(json.dumps(result))


# ------------------------------------------------------------------ driver


def measure(mode: str, archive: Path) -> dict[str, float]:
    server, url = start_moto()
    try:
        env = aws_env(url)
        setup = "import boto3,sys; s3=boto3.client('s3'); s3.create_bucket(Bucket=sys.argv[1]); "
        setup += "s3.upload_file(sys.argv[2], sys.argv[1], sys.argv[3])"
        subprocess.run([sys.executable, "-c", setup, BUCKET, str(archive), KEY], env=env, check=True)
        output = subprocess.run(
            [sys.executable, __file__, "--child", mode], env=env, check=True, capture_output=True, text=True
        ).stdout
        result = json.loads(output.strip().splitlines()[-1])
        result["server_cpu_seconds"] = _cpu_seconds(server.pid)
        return result
    finally:
        server.terminate()
        server.wait(timeout=30)


def _cpu_seconds(pid: int) -> float:
    """CPU time the moto server has used so far (Linux /proc), to show which side is the bottleneck."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=5200)
    parser.add_argument("--member-kb", type=int, default=40)
    parser.add_argument("--child", choices=["naive", "streaming"])
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        full, half = Path(tmp) / "full.zip", Path(tmp) / "half.zip"
        generate_archive(full, args.members, args.member_kb)
        generate_archive(half, args.members // 2, args.member_kb)
        with zipfile.ZipFile(full) as archive:
            count = len(archive.infolist())
        megabytes = full.stat().st_size / 1e6, half.stat().st_size / 1e6
        print(f"archive: {megabytes[0]:.0f} MB, {count} members (half: {megabytes[1]:.0f} MB)")
        streaming_half = measure("streaming", half)
        streaming = measure("streaming", full)
        naive = measure("naive", full)
    for name, result in (("streaming (half)", streaming_half), ("streaming", streaming), ("naive", naive)):
        print(
            f"{name:18s} {result['seconds']:7.1f} s  peak RSS {result['peak_rss_mb']:6.0f} MB  "
            f"objects {int(result['written'])}  CPU: ingest {result['cpu_seconds']:.0f} s, "
            f"moto server {result['server_cpu_seconds']:.0f} s"
        )
    print(f"speed-up streaming vs naive: {naive['seconds'] / streaming['seconds']:.2f}x (target >= 3x)")
    rss = f"{streaming_half['peak_rss_mb']:.0f} -> {streaming['peak_rss_mb']:.0f} MB"
    print(f"streaming RSS half -> full archive: {rss} (target <= 256 MB and flat)")


if __name__ == "__main__":
    main()
