"""Each split of a dataset as a few large POSIX tar shards in S3 (``<split>/<split>-00000.tar``, ...).

Why: a training job's File-mode channel is downloaded one object at a time, so 8,351 small image
objects made the download most of every trial's wall time. A shard holds at most MAX_SHARD_BYTES
of tar; its members are ``<class_dir>/<image>``, the layout of a split folder, so any tar tool
extracts a shard into the same tree that a folder channel holds.

Each shard is one multipart upload fed from one part buffer per split: memory is bounded by
(splits + PARTS_IN_FLIGHT) parts whatever the dataset's size, and nothing is spooled to disk.
Members arrive in archive order on the extracting thread (so a retry writes the same shards);
only the part uploads run on a small pool.

Errors: every S3 error propagates (transient, docs/contracts.md "Error taxonomy": Lambda retries
the event). ``abort()`` aborts the open multipart uploads so no invisible parts are left behind
(the bucket's lifecycle rule is the backstop for a killed process); shards completed by a failed
attempt are overwritten by the retry, and any extra key under a split prefix is deleted before the
manifest is written (``remove_stale``), so a channel never holds a shard the manifest does not list.
"""

from __future__ import annotations

import calendar
import hashlib
import tarfile
import threading
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pipeline.powertools import logger

MAX_SHARD_BYTES = 256 * 1024**2  # a shard's tar size, end-of-archive blocks included
PART_BYTES = 8 * 1024**2  # each part but a shard's last is at least this
PARTS_IN_FLIGHT = 4  # part uploads running or queued, across all splits
SHARD_SUFFIX = ".tar"
_BLOCK = tarfile.BLOCKSIZE  # 512: headers and member data are padded to whole blocks
# Two zero blocks end the archive. No padding to 10 KiB records: readers do not need it, and it
# would let a shard exceed its limit.
_END_OF_ARCHIVE = 2 * _BLOCK


MIN_PART_BYTES = 5 * 1024**2  # S3's minimum for every part but the last
MAX_PARTS = 10_000  # S3's maximum number of parts of one upload


@dataclass(frozen=True)
class ShardLimits:
    max_shard_bytes: int = MAX_SHARD_BYTES
    part_bytes: int = PART_BYTES
    parts_in_flight: int = PARTS_IN_FLIGHT

    def __post_init__(self) -> None:
        if self.part_bytes < MIN_PART_BYTES:
            raise ValueError(f"part size {self.part_bytes} is below S3's minimum of {MIN_PART_BYTES}")
        if self.max_shard_bytes < 4 * 512 or self.max_shard_bytes > self.part_bytes * (MAX_PARTS - 1):
            raise ValueError(
                f"shard size {self.max_shard_bytes} does not fit {MAX_PARTS} parts of {self.part_bytes}"
            )
        if self.parts_in_flight < 1:
            raise ValueError("parts_in_flight must be at least 1")


@dataclass
class Shard:
    """One completed (or open) shard; ``members`` is [name, data offset, size] in tar order."""

    key: str
    bytes: int = 0
    members: list[tuple[str, int, int]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"key": self.key, "bytes": self.bytes, "members": len(self.members)}

    def index(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "bytes": self.bytes,
            "members": [
                {"name": name, "offset": offset, "size": size} for name, offset, size in self.members
            ],
        }


def shard_key(split_prefix: str, split: str, number: int) -> str:
    return f"{split_prefix}{split}-{number:05d}{SHARD_SUFFIX}"


def _padding(size: int, unit: int) -> int:
    return -size % unit


def tar_header(name: str, size: int, mtime: int) -> bytes:
    """POSIX (pax) header of a regular file: ustar when the name fits, a pax record when not."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")


def zip_mtime(info: zipfile.ZipInfo) -> int:
    """The member's zip timestamp as seconds since the epoch (0 when the zip holds no valid date)."""
    try:
        return calendar.timegm((*info.date_time, 0, 0, 0))
    except (ValueError, OverflowError, TypeError):
        return 0


class _OpenShard:
    def __init__(self, key: str, upload_id: str) -> None:
        self.shard = Shard(key)
        self.upload_id = upload_id
        self.buffer = bytearray()
        self.parts: list[tuple[int, Future[str]]] = []


class _SplitShards:
    """The shards of one split, written one after the other."""

    def __init__(self, owner: TarShardSink, split: str) -> None:
        self.owner = owner
        self.split = split
        self.prefix = f"{owner.prefix}{split}/"
        self.done: list[Shard] = []
        self.open: _OpenShard | None = None

    def add(self, name: str, data: bytes, mtime: int) -> None:
        header = tar_header(name, len(data), mtime)
        entry = len(header) + len(data) + _padding(len(data), _BLOCK)
        limit = self.owner.limits.max_shard_bytes
        if (
            self.open is not None
            and self.open.shard.members
            and self._size() + entry + _END_OF_ARCHIVE > limit
        ):
            self.finish()  # one member larger than the limit still gets a shard of its own
        if self.open is None:
            self.open = self.owner.start_upload(shard_key(self.prefix, self.split, len(self.done)))
        current = self.open
        current.shard.members.append((name, self._size() + len(header), len(data)))
        current.buffer += header
        current.buffer += data
        current.buffer += bytes(_padding(len(data), _BLOCK))
        current.shard.bytes += entry
        if len(current.buffer) >= self.owner.limits.part_bytes:
            self.owner.upload_part(current)

    def _size(self) -> int:
        return self.open.shard.bytes if self.open is not None else 0

    def finish(self) -> None:
        current = self.open
        if current is None:
            return
        current.buffer += bytes(_END_OF_ARCHIVE)
        current.shard.bytes += _END_OF_ARCHIVE
        self.owner.upload_part(current)
        self.owner.complete(current)
        self.done.append(current.shard)
        self.open = None


class TarShardSink:
    """Receives validated members (``<split>/<class_dir>/<image>``) and writes them as tar shards
    under ``prefix`` + ``<split>/``. Use ``close()`` on success, ``abort()`` on any failure."""

    def __init__(
        self, s3: Any, bucket: str, prefix: str, splits: tuple[str, ...], limits: ShardLimits
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self.limits = limits
        self.splits = {split: _SplitShards(self, split) for split in splits}
        self._pool = ThreadPoolExecutor(max_workers=limits.parts_in_flight, thread_name_prefix="shard-upload")
        self._slots = threading.BoundedSemaphore(limits.parts_in_flight)  # bounds parts held in memory
        self.requests = 0
        self._member_digests: dict[str, str] = {}  # relative path -> sha256 of the member's bytes

    # MemberSink (pipeline.ingest.unzip) ------------------------------------------------------------
    def add(self, relative: str, data: bytes, info: zipfile.ZipInfo) -> None:
        split, _, name = relative.partition("/")
        self.splits[split].add(name, data, zip_mtime(info))
        self._member_digests[relative] = hashlib.sha256(data).hexdigest()

    def content_id(self) -> str:
        """``sha256:<hex>`` of what the shards hold: every member's path and bytes, in path order. The
        same images under the same names give the same id, whatever the zip's order, compression or
        upload (single or multipart, any part size), so the features cache can be keyed on it."""
        digest = hashlib.sha256()
        for relative in sorted(self._member_digests):
            digest.update(f"{relative}\t{self._member_digests[relative]}\n".encode())
        return f"sha256:{digest.hexdigest()}"

    # lifecycle -----------------------------------------------------------------------------------
    def close(self) -> dict[str, list[Shard]]:
        """Complete the last shard of every split; returns the shards per split."""
        try:
            for writer in self.splits.values():
                writer.finish()
        finally:
            self._pool.shutdown(wait=True)
        return {split: list(writer.done) for split, writer in self.splits.items()}

    def abort(self) -> None:
        """Abort every open multipart upload (after its running part uploads have ended)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        for writer in self.splits.values():
            if writer.open is not None:
                _abort(self.s3, self.bucket, writer.open.shard.key, writer.open.upload_id)
                writer.open = None

    def written_keys(self) -> set[str]:
        return {shard.key for writer in self.splits.values() for shard in writer.done}

    def remove_stale(self, keep: set[str]) -> list[str]:
        """Delete every object under the split prefixes that is not in ``keep`` (shards or per-image
        objects of an earlier attempt); returns the deleted keys."""
        stale: list[str] = []
        for writer in self.splits.values():
            paginator = self.s3.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=writer.prefix):
                stale += [item["Key"] for item in page.get("Contents", []) if item["Key"] not in keep]
        for start in range(0, len(stale), 1000):  # DeleteObjects takes at most 1,000 keys
            batch = [{"Key": key} for key in stale[start : start + 1000]]
            response = self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            if response.get("Errors"):
                first = response["Errors"][0]
                raise RuntimeError(
                    f"could not delete {first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                )
        return stale

    # S3 ------------------------------------------------------------------------------------------
    def start_upload(self, key: str) -> _OpenShard:
        upload_id = self.s3.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType="application/x-tar"
        )["UploadId"]
        self.requests += 1
        return _OpenShard(key, upload_id)

    def upload_part(self, current: _OpenShard) -> None:
        """Hand the buffer to the pool as the next part; re-raise a failed earlier part now."""
        for _, future in current.parts:
            if future.done():
                future.result()
        body = bytes(current.buffer)
        current.buffer.clear()
        number = len(current.parts) + 1
        self._slots.acquire()  # blocks while PARTS_IN_FLIGHT parts are held: bounded memory
        try:
            future = self._pool.submit(self._put_part, current.shard.key, current.upload_id, number, body)
        except BaseException:
            self._slots.release()
            raise
        current.parts.append((number, future))

    def _put_part(self, key: str, upload_id: str, number: int, body: bytes) -> str:
        try:
            response = self.s3.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
            )
            return str(response["ETag"])
        finally:
            self._slots.release()

    def complete(self, current: _OpenShard) -> None:
        parts = [{"PartNumber": number, "ETag": future.result()} for number, future in current.parts]
        self.s3.complete_multipart_upload(
            Bucket=self.bucket,
            Key=current.shard.key,
            UploadId=current.upload_id,
            MultipartUpload={"Parts": parts},
        )
        self.requests += len(parts) + 1


def _abort(s3: Any, bucket: str, key: str, upload_id: str) -> None:
    try:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except Exception as error:  # already failing; the lifecycle rule removes the parts after a day
        logger.warning("could not abort the multipart upload", extra={"key": key, "error": str(error)})
