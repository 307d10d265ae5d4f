"""Ingest one uploaded dataset zip: stream it into datasets/<id>/, write report.json and manifest.json.

Layout written (docs/contracts.md, "Object layout"): each split as a few tar shards
``datasets/<id>/<split>/<split>-NNNNN.tar`` (pipeline.ingest.shards; the manifest's channels are
these split prefixes), ``index.json`` (every shard's members: name, data offset, size), then
report.json and manifest.json.

What is written last marks the work done (docs/contracts.md, "Error taxonomy"):
- accepted: report.json, then manifest.json. The manifest's creation starts the tuning job (a
  separate function, so a failure to start tuning never re-extracts the archive); a report without
  a manifest is an attempt that died in between, and is redone.
- rejected: report.json with status "rejected" is the only document, so it is the last one.
Only data errors (ArchiveRejectedError) become a rejection; AWS and network errors propagate so
Lambda retries the event.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Store
from pipeline.adapters.training_layer import contract_module, layout_module
from pipeline.ingest.seekable import S3RangeReader
from pipeline.ingest.shards import Shard, ShardLimits, TarShardSink
from pipeline.ingest.unzip import ArchiveRejectedError, Limits, extract, open_archive
from pipeline.powertools import logger
from pipeline.settings import IngestSettings

DATASETS_PREFIX = "datasets/"
DATA_FORMAT = "tar-shards"  # manifest["format"]: what the channels hold (dogclf.data reads both shapes)
INDEX_FILE = "index.json"


@dataclass(frozen=True)
class Upload:
    """One uploaded object, as the S3 event names it (key already URL-decoded)."""

    bucket: str
    key: str
    etag: str = ""
    version_id: str | None = None


def dataset_id(upload: Upload) -> str:
    """Deterministic id of an upload: readable stem + hash of bucket, key and ETag (version). Each
    upload is its own dataset (and pipeline run); the features it shares with an earlier upload of
    the same images are found by the manifest's ``content_id`` instead (pipeline.features_stage)."""
    stem = re.sub(r"[^a-z0-9]+", "-", PurePosixPath(upload.key).stem.lower()).strip("-")[:40] or "dataset"
    digest = hashlib.sha256(
        f"{upload.bucket}/{upload.key}/{upload.etag}/{upload.version_id or ''}".encode()
    ).hexdigest()[:12]
    return f"{stem}-{digest}"


def finished_report(store: S3Store, bucket: str, prefix: str) -> dict[str, Any] | None:
    """The report of a finished ingest of this dataset, or None when it has to be (re)done.

    Finished means its last document exists: the manifest (accepted) or a rejected report.
    """
    if store.exists(bucket, prefix + "manifest.json"):
        return dict(store.get_json(bucket, prefix + "report.json"))
    if store.exists(bucket, prefix + "report.json"):
        report = store.get_json(bucket, prefix + "report.json")
        if report.get("status") == "rejected":
            return dict(report)
        logger.warning("report without manifest: redoing the ingest", extra={"prefix": prefix})
    return None


def ingest_upload(
    upload: Upload,
    settings: IngestSettings,
    store: S3Store,
    notifier: Notifier,
    shard_limits: ShardLimits | None = None,
) -> dict[str, Any]:
    """Extract and validate one upload; returns the report (status accepted or rejected)."""
    identifier = dataset_id(upload)
    prefix = f"{DATASETS_PREFIX}{identifier}/"
    bucket = settings.dataset_bucket
    done = finished_report(store, bucket, prefix)
    if done is not None:
        # A redelivered event whose idempotency record has expired: the work is already done.
        logger.info("dataset already ingested", extra={"dataset_id": identifier, "status": done["status"]})
        return done

    started = time.perf_counter()
    report: dict[str, Any] = {
        "dataset_id": identifier,
        "source": {"bucket": upload.bucket, "key": upload.key, "etag": upload.etag},
        "prefix": f"s3://{bucket}/{prefix}",
    }
    size, etag = store.size_and_etag(upload.bucket, upload.key, upload.version_id)
    report["source"]["etag"] = upload.etag or etag
    report["archive_bytes"] = size
    reader = S3RangeReader(
        lambda start, end: store.get_range(upload.bucket, upload.key, start, end, upload.version_id), size
    )
    limits = Limits(
        max_members=settings.ingest_max_members,
        max_total_bytes=settings.ingest_max_total_bytes,
        max_member_bytes=settings.ingest_max_member_bytes,
        max_ratio=settings.ingest_max_ratio,
        max_image_pixels=contract_module(settings.training_code_dir).MAX_IMAGE_PIXELS,
    )
    layout = layout_module(settings.training_code_dir)
    sink = TarShardSink(store.client, bucket, prefix, tuple(layout.SPLITS), shard_limits or ShardLimits())
    try:
        with open_archive(reader, limits) as archive:
            extraction, summary = extract(archive, sink, layout, limits)
        shards = sink.close()
    except ArchiveRejectedError as error:
        sink.abort()
        # Shards written before the rejection (every member of a split was bad, say) are removed:
        # a rejected dataset has no channels.
        sink.remove_stale(keep=set())
        report.update(status="rejected", reason=str(error), seconds=round(time.perf_counter() - started, 3))
        # Notify before the last write: a retry after a failed publish redoes both (at least once).
        notifier.publish(f"Dataset rejected: {upload.key}", report)
        store.put_json(bucket, prefix + "report.json", report)
        logger.warning("dataset rejected", extra={"dataset_id": identifier, "reason": str(error)})
        return report
    except BaseException:
        sink.abort()  # no multipart upload is left open; S3 errors propagate (transient: retried)
        raise
    finally:
        reader.close()

    # Shards or per-image objects of an earlier attempt must not end up in a channel.
    stale = sink.remove_stale(keep=sink.written_keys())
    if stale:
        logger.info("removed objects of an earlier attempt", extra={"count": len(stale), "first": stale[0]})
    store.put_json(bucket, prefix + INDEX_FILE, shard_index(identifier, shards))
    report.update(status="accepted", extraction=extraction.to_dict(), layout=summary.to_dict())
    report["shards"] = {split: len(split_shards) for split, split_shards in shards.items()}
    report["objects"] = sum(report["shards"].values())
    report["seconds"] = round(time.perf_counter() - started, 3)
    manifest = {
        "dataset_id": identifier,
        # What the features cache is keyed on (pipeline.features_stage): the images, not the upload.
        "content_id": sink.content_id(),
        "source": report["source"],
        "bucket": bucket,
        "prefix": prefix,
        "format": DATA_FORMAT,
        "channels": {split: f"s3://{bucket}/{prefix}{split}/" for split in layout.SPLITS},
        "shards": {split: [shard.summary() for shard in shards[split]] for split in layout.SPLITS},
        "index": f"s3://{bucket}/{prefix}{INDEX_FILE}",
        "classes": summary.classes,
        "class_dirs": summary.class_dirs,
        "images": summary.to_dict()["images"],
        "counts": summary.to_dict()["counts"],
    }
    store.put_json(bucket, prefix + "report.json", report)
    notifier.publish(
        f"Dataset accepted: {identifier}",
        {
            "dataset_id": identifier,
            "images": manifest["images"],
            "skipped": extraction.to_dict()["skipped_total"],
            "classes": len(summary.classes),
        },
    )
    store.put_json(bucket, prefix + "manifest.json", manifest)  # last: marks the ingest done
    return report


def shard_index(identifier: str, shards: dict[str, list[Shard]]) -> dict[str, Any]:
    """index.json: every shard's members (name, data offset, size), to browse or audit a dataset, or
    to read one image with a ranged GET, without downloading the shards."""
    return {
        "dataset_id": identifier,
        "format": DATA_FORMAT,
        "splits": {
            split: [shard.index() for shard in split_shards] for split, split_shards in shards.items()
        },
    }
