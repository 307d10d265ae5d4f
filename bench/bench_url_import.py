"""URL import: throughput and peak RSS of pipeline.url_import streaming a zip from an HTTP server on
127.0.0.1 into a local S3 (moto server), against a naive import (read the whole body, put_object).

Each import runs in a fresh subprocess (its peak RSS is its own); the HTTP server and moto are other
processes. The archive is generated (one stored member of random bytes, so its size is the body's).
The streaming import also runs on a half-size archive to show that its RSS does not grow with the
body. Loopback numbers say what the importer costs, not what the internet gives a Lambda.

    .venv/bin/python bench/bench_url_import.py [--mb 200] [--part-mb 16]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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


def generate_archive(path: Path, megabytes: int) -> None:
    """A zip with one stored member of random bytes, written 1 MiB at a time (bounded memory)."""
    name = "dogImages/train/001.Affenpinscher/blob.jpg"
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive,
        archive.open(name, "w", force_zip64=True) as member,
    ):
        for _ in range(megabytes):
            member.write(os.urandom(1024 * 1024))


def start(command: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{command[0]} did not start")


# ------------------------------------------------------------------ the imports (run in children)


def run_streaming(url: str, part_mb: int) -> dict[str, float]:
    import boto3

    from pipeline.url_import import ImportLimits, ImportRequest, import_url

    s3 = boto3.client("s3")
    limits = ImportLimits(max_bytes=8 * 1024**3, part_bytes=part_mb * 1024**2, allow_loopback_http=True)
    request = ImportRequest.from_event({"url": url, "name": "streamed"}, limits)
    started = time.perf_counter()
    result = import_url(request, BUCKET, s3, limits)
    return {"seconds": time.perf_counter() - started, "bytes": result["bytes"], "parts": result["parts"]}


def run_naive(url: str, part_mb: int) -> dict[str, float]:
    import urllib.request

    import boto3

    s3 = boto3.client("s3")
    started = time.perf_counter()
    body = urllib.request.urlopen(url, timeout=30).read()  # the whole archive in memory
    s3.put_object(Bucket=BUCKET, Key="uploads/naive.zip", Body=body)
    return {"seconds": time.perf_counter() - started, "bytes": len(body), "parts": 1}


def child(mode: str, url: str, part_mb: int) -> None:
    import boto3  # noqa: F401  (imported before the baseline, as a warm Lambda has it)

    import pipeline.url_import  # noqa: F401

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = (run_naive if mode == "naive" else run_streaming)(url, part_mb)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result.update(
        peak_rss_mb=usage.ru_maxrss / 1024,
        baseline_rss_mb=baseline,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
    )
    print(json.dumps(result))


# ------------------------------------------------------------------ driver


def measure(mode: str, url: str, part_mb: int) -> dict[str, float]:
    port = free_port()
    moto = start([str(REPO / ".venv" / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], port)
    try:
        env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_ENDPOINT_URL")}
        env.update(
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
            TRAINING_CODE_DIR=str(REPO / "training"),
            PYTHONPATH=str(REPO / "functions"),
        )
        setup = "import boto3,sys; boto3.client('s3').create_bucket(Bucket=sys.argv[1])"
        subprocess.run([sys.executable, "-c", setup, BUCKET], env=env, check=True)
        command = [sys.executable, __file__, "--child", mode, "--url", url, "--part-mb", str(part_mb)]
        output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
        return json.loads(output.strip().splitlines()[-1])
    finally:
        moto.terminate()
        moto.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=int, default=200, help="archive size in MiB")
    parser.add_argument("--part-mb", type=int, default=16, help="multipart part size in MiB")
    parser.add_argument("--child", choices=["naive", "streaming"])
    parser.add_argument("--url")
    parser.add_argument("--no-naive", action="store_true", help="skip the whole-body baseline")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, args.part_mb)
        return

    with tempfile.TemporaryDirectory(prefix="bench-url-import-") as tmp:
        generate_archive(Path(tmp) / "full.zip", args.mb)
        generate_archive(Path(tmp) / "half.zip", args.mb // 2)
        port = free_port()
        server_command = [sys.executable, "-m", "http.server", "-b", "127.0.0.1", "-d", tmp, str(port)]
        http_server = start(server_command, port)
        base = f"http://127.0.0.1:{port}"
        try:
            runs = [
                ("streaming (half)", measure("streaming", f"{base}/half.zip", args.part_mb)),
                ("streaming", measure("streaming", f"{base}/full.zip", args.part_mb)),
            ]
            if not args.no_naive:
                runs.append(("naive (whole body)", measure("naive", f"{base}/full.zip", args.part_mb)))
        finally:
            http_server.terminate()
            http_server.wait(timeout=30)

    print(f"part size {args.part_mb} MiB; HTTP server and moto on 127.0.0.1 in their own processes")
    header = ("import", "MiB", "parts", "seconds", "MiB/s", "CPU s", "peak RSS MiB", "over base")
    print(
        f"{header[0]:<20} {header[1]:>6} {header[2]:>6} {header[3]:>8} {header[4]:>7} {header[5]:>6} "
        f"{header[6]:>13} {header[7]:>10}"
    )
    for name, result in runs:
        mib = result["bytes"] / 1024**2
        print(
            f"{name:<20} {mib:>6.0f} {result['parts']:>6} {result['seconds']:>8.2f} "
            f"{mib / result['seconds']:>7.1f} {result['cpu_seconds']:>6.1f} {result['peak_rss_mb']:>13.0f} "
            f"{result['peak_rss_mb'] - result['baseline_rss_mb']:>10.0f}"
        )


if __name__ == "__main__":
    main()
