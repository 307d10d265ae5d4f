"""Ingest writes each split as tar shards (pipeline.ingest.shards) against moto S3: members and counts,
the shard size limit, index.json, aborted multipart uploads on a fault, no manifest, a clean retry."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import threading
import zipfile
from typing import Any

import pytest
from botocore.exceptions import ClientError
from fn_support import ENV, build_zip, layout_members, tiny_jpeg

from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Store
from pipeline.ingest.service import Upload, dataset_id, ingest_upload
from pipeline.ingest.shards import MIN_PART_BYTES, ShardLimits, TarShardSink
from pipeline.settings import Settings

BUCKET = ENV["DATASET_BUCKET"]
KEY = "uploads/shards.zip"
SPLITS = ("train", "valid", "test")
LONG_NAME = "dogImages/train/001.Breed_1/" + "long_name_" * 15 + ".jpg"  # > 100 bytes: a pax record
SMALL = ShardLimits(max_shard_bytes=6 * 1024)  # a few 16 px JPEGs (1.5 KiB as tar entries) a shard


def members() -> dict[str, bytes]:
    found = layout_members(classes=3, per_split=4)
    found[LONG_NAME] = tiny_jpeg(99)
    return found


def expected_by_split(archive: dict[str, bytes]) -> dict[str, dict[str, bytes]]:
    """What each split's shards must hold, from the archive's own names: <class_dir>/<image>."""
    expected: dict[str, dict[str, bytes]] = {split: {} for split in SPLITS}
    for name, data in archive.items():
        _, split, class_dir, filename = name.split("/")
        expected[split][f"{class_dir}/{filename}"] = data
    return expected


def upload_zip(aws: Any, data: bytes) -> Upload:
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=data)
    return Upload(BUCKET, KEY, aws.s3.head_object(Bucket=BUCKET, Key=KEY)["ETag"].strip('"'))


def run_ingest(upload: Upload, limits: ShardLimits = SMALL, s3_client: Any = None) -> dict[str, Any]:
    settings = Settings.from_env()
    return ingest_upload(
        upload, settings, S3Store(s3_client), Notifier(settings.notification_topic_arn), shard_limits=limits
    )


def read_object(aws: Any, key: str) -> bytes:
    return aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def open_uploads(aws: Any) -> list[dict[str, Any]]:
    return aws.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])


def test_each_split_is_a_set_of_shards_holding_exactly_its_images(aws) -> None:
    archive = members()
    upload = upload_zip(aws, build_zip(archive))
    report = run_ingest(upload)
    assert report["status"] == "accepted"
    prefix = f"datasets/{dataset_id(upload)}/"
    manifest = json.loads(read_object(aws, prefix + "manifest.json"))
    index = json.loads(read_object(aws, prefix + "index.json"))
    expected = expected_by_split(archive)

    for split in SPLITS:
        assert manifest["channels"][split] == f"s3://{BUCKET}/{prefix}{split}/"
        shards = manifest["shards"][split]
        assert len(shards) >= 2  # the 6 KiB limit forces several
        # The channel prefix holds the listed shards and nothing else.
        assert sorted(aws.keys(BUCKET, f"{prefix}{split}/")) == [shard["key"] for shard in shards]
        found: dict[str, bytes] = {}
        for shard, indexed in zip(shards, index["splits"][split], strict=True):
            body = read_object(aws, shard["key"])
            assert len(body) == shard["bytes"] == indexed["bytes"] <= SMALL.max_shard_bytes
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:") as tar:
                infos = tar.getmembers()
                assert all(info.isreg() for info in infos)
                for info in infos:
                    handle = tar.extractfile(info)
                    assert handle is not None and info.name not in found
                    found[info.name] = handle.read()
            assert shard["members"] == len(infos)
            # index.json's offsets and sizes address each member's bytes inside the shard.
            for entry in indexed["members"]:
                data = body[entry["offset"] : entry["offset"] + entry["size"]]
                assert data == found[entry["name"]]
        assert found == expected[split]
        assert manifest["images"][split] == len(expected[split])
        per_class: dict[str, int] = {}
        for name in expected[split]:
            per_class[name.split("/")[0]] = per_class.get(name.split("/")[0], 0) + 1
        assert manifest["counts"][split] == per_class
    assert manifest["class_dirs"] == ["001.Breed_1", "002.Breed_2", "003.Breed_3"]
    assert report["objects"] == sum(len(manifest["shards"][split]) for split in SPLITS)
    assert open_uploads(aws) == []


def test_one_shard_per_split_at_the_default_limit(aws) -> None:
    upload = upload_zip(aws, build_zip(members()))
    report = run_ingest(upload, ShardLimits())
    assert report["shards"] == {"train": 1, "valid": 1, "test": 1}


class FailingPart:
    """An S3 client whose ``fail_on``-th UploadPart raises a throttling error (everything else passes)."""

    def __init__(self, client: Any, fail_on: int) -> None:
        self._client = client
        self._fail_on = fail_on
        self.parts = 0

    def upload_part(self, **kwargs: Any) -> Any:
        self.parts += 1
        if self.parts == self._fail_on:
            raise ClientError(
                {
                    "Error": {"Code": "SlowDown", "Message": "injected"},
                    "ResponseMetadata": {"HTTPStatusCode": 503},
                },
                "UploadPart",
            )
        return self._client.upload_part(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_fault_mid_upload_aborts_the_multipart_upload_and_writes_no_manifest(aws) -> None:
    upload = upload_zip(aws, build_zip(members()))
    prefix = f"datasets/{dataset_id(upload)}/"
    failing = FailingPart(aws.s3, fail_on=3)  # after two shards were completed
    with pytest.raises(ClientError, match="SlowDown"):
        run_ingest(upload, s3_client=failing)
    assert failing.parts == 3
    assert open_uploads(aws) == []  # the open shard's upload was aborted
    keys = aws.keys(BUCKET, prefix)
    assert not [key for key in keys if key.endswith(".json")]  # no manifest, no report, no index
    assert [key for key in keys if key.endswith(".tar")]  # completed shards stay until the retry
    # A leftover of some earlier attempt must not survive in a channel either.
    aws.s3.put_object(Bucket=BUCKET, Key=f"{prefix}train/train-00099.tar", Body=b"stale")

    report = run_ingest(upload)  # the retry (a new Lambda attempt)
    assert report["status"] == "accepted"
    manifest = json.loads(read_object(aws, prefix + "manifest.json"))
    listed = sorted(shard["key"] for split in SPLITS for shard in manifest["shards"][split])
    assert sorted(key for key in aws.keys(BUCKET, prefix) if key.endswith(".tar")) == listed
    assert open_uploads(aws) == []


def test_a_split_whose_images_are_all_bad_is_rejected_and_its_shards_are_removed(aws) -> None:
    archive = {name: data if "/test/" not in name else b"not an image" for name, data in members().items()}
    upload = upload_zip(aws, build_zip(archive))
    report = run_ingest(upload)
    assert report["status"] == "rejected" and "missing split" in report["reason"]
    prefix = f"datasets/{dataset_id(upload)}/"
    assert aws.keys(BUCKET, prefix) == [prefix + "report.json"]
    assert open_uploads(aws) == []


def test_shards_are_the_same_bytes_on_a_retry(aws) -> None:
    """Members go into shards in archive order on one thread: a retry rewrites identical objects."""
    upload = upload_zip(aws, build_zip(members()))
    prefix = f"datasets/{dataset_id(upload)}/"
    run_ingest(upload)
    first = {key: read_object(aws, key) for key in aws.keys(BUCKET, prefix) if key.endswith(".tar")}
    aws.s3.delete_object(Bucket=BUCKET, Key=prefix + "manifest.json")  # force the ingest to run again
    run_ingest(upload)
    second = {key: read_object(aws, key) for key in aws.keys(BUCKET, prefix) if key.endswith(".tar")}
    assert first == second and len(first) >= 6


def test_zip_timestamps_become_tar_mtimes(aws) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members().items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 5, 17, 12, 30, 0)), data)
    upload = upload_zip(aws, buffer.getvalue())
    run_ingest(upload, ShardLimits())
    body = read_object(aws, f"datasets/{dataset_id(upload)}/valid/valid-00000.tar")
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert {info.mtime for info in tar.getmembers()} == {1589718600}


class GatedS3:
    """A fake S3 whose UploadPart calls wait at a gate, to see how much the writer holds meanwhile."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.changed = threading.Condition()
        self.waiting = 0
        self.parts: dict[tuple[str, int], bytes] = {}
        self.objects: dict[str, bytes] = {}

    def create_multipart_upload(self, **kwargs: Any) -> dict[str, str]:
        return {"UploadId": "upload-" + kwargs["Key"]}

    def upload_part(self, **kwargs: Any) -> dict[str, str]:
        with self.changed:
            self.waiting += 1
            self.changed.notify_all()
        assert self.gate.wait(timeout=60)
        with self.changed:
            self.waiting -= 1
        self.parts[(kwargs["Key"], kwargs["PartNumber"])] = kwargs["Body"]
        return {"ETag": f'"{kwargs["PartNumber"]}"'}

    def complete_multipart_upload(self, **kwargs: Any) -> None:
        numbers = [part["PartNumber"] for part in kwargs["MultipartUpload"]["Parts"]]
        assert numbers == list(range(1, len(numbers) + 1))
        self.objects[kwargs["Key"]] = b"".join(self.parts[(kwargs["Key"], number)] for number in numbers)


def test_memory_is_bounded_by_the_parts_in_flight_and_parts_are_big_enough() -> None:
    s3 = GatedS3()
    limits = ShardLimits(max_shard_bytes=64 * 1024**2, part_bytes=MIN_PART_BYTES, parts_in_flight=2)
    sink = TarShardSink(s3, BUCKET, "datasets/x/", SPLITS, limits)
    images = {f"001.Breed_1/img_{index:03d}.jpg": os.urandom(1024**2) for index in range(30)}
    added: list[str] = []

    def add_all() -> None:
        for name, data in images.items():
            sink.add(f"train/{name}", data, zipfile.ZipInfo(name))
            added.append(name)

    adder = threading.Thread(target=add_all)
    adder.start()
    with s3.changed:
        assert s3.changed.wait_for(lambda: s3.waiting == limits.parts_in_flight, timeout=60)
    adder.join(timeout=2)  # it must stay blocked while both parts wait at the gate
    assert adder.is_alive()
    # Held: the parts in flight plus the one being filled (and one member past the part size).
    held_parts = limits.parts_in_flight + 1
    assert len(added) <= held_parts * limits.part_bytes // 1024**2 + 1 < len(images)
    s3.gate.set()
    adder.join(timeout=60)
    assert not adder.is_alive() and len(added) == len(images)
    shards = sink.close()

    [shard] = shards["train"]
    body = s3.objects[shard.key]
    part_sizes = [len(data) for (key, _), data in sorted(s3.parts.items()) if key == shard.key]
    assert len(part_sizes) >= 5 and all(size >= MIN_PART_BYTES for size in part_sizes[:-1])
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:") as tar:
        read = {}
        for info in tar.getmembers():
            handle = tar.extractfile(info)
            assert handle is not None
            read[info.name] = handle.read()
    assert read == images and len(body) == shard.bytes


def stored_zip(archive: dict[str, bytes]) -> bytes:
    """The same members, in reverse order and uncompressed: another archive of the same images."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as stored:
        for name, data in reversed(list(archive.items())):
            stored.writestr(name, data)
    return buffer.getvalue()


def test_the_content_id_is_the_images_not_the_upload(aws) -> None:
    """The features cache is keyed on what the shards hold, so reusing features never depends on the
    upload's bytes: two uploads of the same
    images (another key, another order, another compression) are two datasets with one content id;
    one changed image changes it."""
    archive = members()
    first = upload_zip(aws, build_zip(archive))
    run_ingest(first)
    aws.s3.put_object(Bucket=BUCKET, Key="uploads/again.zip", Body=stored_zip(archive))
    again = Upload(
        BUCKET, "uploads/again.zip", aws.s3.head_object(Bucket=BUCKET, Key="uploads/again.zip")["ETag"]
    )
    run_ingest(again)
    changed = dict(archive)
    changed[next(iter(changed))] = tiny_jpeg(7)
    aws.s3.put_object(Bucket=BUCKET, Key="uploads/changed.zip", Body=build_zip(changed))
    other = Upload(
        BUCKET, "uploads/changed.zip", aws.s3.head_object(Bucket=BUCKET, Key="uploads/changed.zip")["ETag"]
    )
    run_ingest(other)

    def manifest(upload: Upload) -> dict[str, Any]:
        return json.loads(read_object(aws, f"datasets/{dataset_id(upload)}/manifest.json"))

    assert len({dataset_id(first), dataset_id(again), dataset_id(other)}) == 3
    # The definition, computed here from the archive itself: every kept member's path under its
    # split and the sha256 of its bytes, in path order.
    lines = sorted(
        f"{name.split('/', 1)[1]}\t{hashlib.sha256(data).hexdigest()}\n" for name, data in archive.items()
    )
    expected = "sha256:" + hashlib.sha256("".join(lines).encode()).hexdigest()
    assert manifest(first)["content_id"] == manifest(again)["content_id"] == expected
    assert manifest(other)["content_id"] != expected
