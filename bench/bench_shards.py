"""Objects per dataset and channel staging time: one object per image (before) vs tar shards (after).

Against a local S3 (moto server on 127.0.0.1), for each generated archive:
- before: the zip extracted one object per image (``pipeline.ingest.unzip.extract`` into this
  bench's ``PerImageSink``: 16 upload threads, the layout and the writer ingest had until the shards);
- after: ``pipeline.ingest.service.ingest_upload`` (tar shards + index.json + report + manifest);
then the local emulator's own channel download (``localcloud.sagemaker.runners.training.TrainingJobRunner.
_download_channels``, as every trial and the profiled job run it) stages the train/valid/test
channels of each layout into a fresh folder. Prints objects per dataset, ingest seconds, staging
seconds and requests.

    .venv/bin/python bench/bench_shards.py [--dog-classes 133 --dog-per-class 8 --dog-size 224]

Measured 2026-11-29 on 2 shared cores (objects = everything under datasets/<id>/; staging = the
three channels, all of the emulator's S3 requests):
    sample (112 images, 0.4 MB)            per image: 112 objects, staging 2.20 s, 227 requests
                                           tar shards:  6 objects, staging 0.08 s,   9 requests
    133 classes x 8 images, 224 px (27 MB) per image: 1064 objects, staging 18.7 s, 2131 requests
                                           tar shards:    6 objects, staging 0.12 s,  11 requests
    133 classes x 8 images, 500 px (124 MB) per image: 1064 objects, staging 19.0 s, 2131 requests
                                           tar shards:    6 objects, staging 1.21 s,  22 requests
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BUCKET = "bench-datasets"
SPLITS = ("train", "valid", "test")


class PerImageSink:
    """The layout before the shards: one PutObject per image, 16 at a time (the pool ingest used)."""

    def __init__(self, s3: Any, prefix: str, threads: int = 16) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.s3, self.prefix = s3, prefix
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="per-image")
        self.pending: list[Any] = []

    def add(self, relative: str, data: bytes, info: zipfile.ZipInfo) -> None:
        from pipeline.ingest.image_headers import sniff_content_type

        content_type = sniff_content_type(data) or "application/octet-stream"
        self.pending.append(
            self.pool.submit(
                self.s3.put_object,
                Bucket=BUCKET,
                Key=self.prefix + relative,
                Body=data,
                ContentType=content_type,
            )
        )

    def close(self) -> None:
        for upload in self.pending:
            upload.result()  # re-raises an upload's error
        self.pool.shutdown()


def count_objects(s3: Any, prefix: str) -> int:
    paginator = s3.get_paginator("list_objects_v2")
    return sum(len(page.get("Contents", [])) for page in paginator.paginate(Bucket=BUCKET, Prefix=prefix))


def ingest_per_image(s3: Any, key: str, prefix: str) -> float:
    from pipeline.adapters.training_layer import layout_module
    from pipeline.ingest.unzip import Limits, extract

    started = time.perf_counter()
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    with zipfile.ZipFile(_bytes_file(body)) as archive:
        sink = PerImageSink(s3, prefix)
        extract(archive, sink, layout_module(REPO / "training"), Limits())
        sink.close()
    return time.perf_counter() - started


def _bytes_file(body: bytes) -> Any:
    import io

    return io.BytesIO(body)


def ingest_shards(key: str) -> tuple[float, dict[str, Any]]:
    from pipeline.adapters.notify import Notifier
    from pipeline.adapters.s3 import S3Store
    from pipeline.ingest.service import Upload, ingest_upload
    from pipeline.settings import Settings

    settings = Settings.from_env()
    started = time.perf_counter()
    report = ingest_upload(
        Upload(BUCKET, key, "bench"), settings, S3Store(), Notifier(settings.notification_topic_arn)
    )
    if report["status"] != "accepted":
        raise RuntimeError(report)
    return time.perf_counter() - started, report


class CountingS3:
    """The emulator's S3 client, counting the requests the channel download makes."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3
        self.calls = 0
        s3.meta.events.register("before-call.s3", self._count)

    def _count(self, **_: Any) -> None:
        self.calls += 1


def stage_channels(s3: Any, prefix: str, workdir: Path) -> tuple[float, int, int]:
    """The emulator's channel download for train/valid/test under ``prefix``: seconds, requests, files."""
    from botocore.exceptions import BotoCoreError, ClientError

    from localcloud.sagemaker.runners.training import TrainingJobRunner

    counter = CountingS3(s3)
    runner = SimpleNamespace(
        context=SimpleNamespace(s3_client=lambda: s3, s3_errors=(ClientError, BotoCoreError)),
        base_dir=workdir,
    )
    channels = [
        {"ChannelName": split, "DataSource": {"S3DataSource": {"S3Uri": f"s3://{BUCKET}/{prefix}{split}/"}}}
        for split in SPLITS
    ]
    before = counter.calls
    started = time.perf_counter()
    TrainingJobRunner._download_channels(runner, channels)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    files = sum(1 for path in (workdir / "input" / "data").rglob("*") if path.is_file())
    s3.meta.events.unregister("before-call.s3", counter._count)
    return seconds, counter.calls - before, files


def run(name: str, archive: Path, s3: Any) -> None:
    key = f"uploads/{name}.zip"
    s3.upload_file(str(archive), BUCKET, key)
    per_image_prefix = f"per-image/{name}/"
    ingest_before = ingest_per_image(s3, key, per_image_prefix)
    ingest_after, report = ingest_shards(key)
    shard_prefix = report["prefix"].split(f"s3://{BUCKET}/", 1)[1]
    rows = []
    for label, prefix, ingest_s in (
        ("per image", per_image_prefix, ingest_before),
        ("tar shards", shard_prefix, ingest_after),
    ):
        workdir = Path(tempfile.mkdtemp(prefix="bench-stage-"))
        try:
            staging_s, requests, files = stage_channels(s3, prefix, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        rows.append((label, count_objects(s3, prefix), ingest_s, staging_s, requests, files))
    images = report["extraction"]["written"]
    megabytes = archive.stat().st_size / 1e6
    print(f"\n{name}: {images} images, {megabytes:.1f} MB zip, shards per split {report['shards']}")
    print(
        f"{'layout':12s} {'objects':>8s} {'ingest s':>9s} {'staging s':>10s} {'requests':>9s} {'files':>6s}"
    )
    for label, objects, ingest_s, staging_s, requests, files in rows:
        print(f"{label:12s} {objects:8d} {ingest_s:9.2f} {staging_s:10.2f} {requests:9d} {files:6d}")
    print(f"staging speed-up: {rows[0][3] / rows[1][3]:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dog-classes", type=int, default=133)
    parser.add_argument(
        "--dog-per-class", type=int, default=8, help="images per class (6 train, 1 valid, 1 test)"
    )
    parser.add_argument("--dog-size", type=int, default=224, help="image side in pixels")
    args = parser.parse_args()

    from bench_ingest import aws_env, start_moto

    from tools.sample_data import write_sample_zip

    server, url = start_moto()
    try:
        os.environ.update(aws_env(url))
        import boto3

        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        boto3.client("sns").create_topic(Name="bench")
        with tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp:
            sample = write_sample_zip(Path(tmp) / "sample.zip")  # the sample dataset's defaults
            run("sample", sample, s3)
            held_out = max(1, args.dog_per_class // 8)
            dog = write_sample_zip(
                Path(tmp) / "dogimages-shaped.zip",
                num_classes=args.dog_classes,
                train_per_class=args.dog_per_class - 2 * held_out,
                valid_per_class=held_out,
                test_per_class=held_out,
                image_size=args.dog_size,
            )
            run("dogimages-shaped", dog, s3)
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
