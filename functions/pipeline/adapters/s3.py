"""S3 access the pipeline needs: JSON documents, existence checks, uploads and ranged reads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from pipeline.adapters.aws import client, error_code


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"not an s3:// URI: {uri!r}")
        return cls(parsed.netloc, parsed.path.lstrip("/"))


class S3Store:
    """Objects by bucket and key over one S3 client (one per process is enough). Missing objects are
    an outcome only where a method says so; every other client error (throttling, 5xx, timeouts:
    transient in pipeline.errors) propagates unchanged. ``client`` is lent to ingest's shard sink,
    which drives multipart uploads (create/upload_part/complete/abort) through it."""

    def __init__(self, s3_client: Any | None = None) -> None:
        self.client = s3_client or client("s3")

    def exists(self, bucket: str, key: str) -> bool:
        """False when the object is missing (404); any other error propagates."""
        try:
            self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if error_code(error) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def size_and_etag(self, bucket: str, key: str, version_id: str | None = None) -> tuple[int, str]:
        """(ContentLength, ETag without quotes) of the object (version); a missing one raises."""
        extra = {"VersionId": version_id} if version_id else {}
        head = self.client.head_object(Bucket=bucket, Key=key, **extra)
        return int(head["ContentLength"]), str(head["ETag"]).strip('"')

    def get_bytes(self, bucket: str, key: str, max_bytes: int | None = None) -> bytes:
        """Whole object; with max_bytes, refuses (ValueError) an object larger than that."""
        response = self.client.get_object(Bucket=bucket, Key=key)
        length = int(response.get("ContentLength", 0))
        if max_bytes is not None and length > max_bytes:
            response["Body"].close()
            raise ObjectTooLargeError(f"s3://{bucket}/{key} is {length} bytes, the limit is {max_bytes}")
        return response["Body"].read()

    def open_stream(self, bucket: str, key: str) -> tuple[int, Any] | None:
        """(ContentLength, streaming body) to read in chunks and close; None when the object does not
        exist. Read errors (timeouts) raise from body.read() and are transient."""
        try:
            response = self.client.get_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if error_code(error) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(response.get("ContentLength", 0)), response["Body"]

    def get_range(
        self, bucket: str, key: str, start: int, end_inclusive: int, version_id: str | None
    ) -> bytes:
        """Bytes start..end_inclusive of the object (version); may be short, the caller checks."""
        extra = {"VersionId": version_id} if version_id else {}
        response = self.client.get_object(
            Bucket=bucket, Key=key, Range=f"bytes={start}-{end_inclusive}", **extra
        )
        return response["Body"].read()

    def get_json(self, bucket: str, key: str) -> Any:
        """The object parsed as JSON; a missing object raises, bad JSON raises ValueError."""
        return json.loads(self.get_bytes(bucket, key))

    def put_bytes(self, bucket: str, key: str, body: bytes, content_type: str) -> None:
        """Write (overwrite) the object."""
        self.client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    def put_json(self, bucket: str, key: str, document: Any) -> None:
        """Write the document as indented, key-sorted JSON."""
        body = json.dumps(document, indent=2, sort_keys=True, default=str).encode()
        self.put_bytes(bucket, key, body, "application/json")


class ObjectTooLargeError(ValueError):
    """An object is larger than the caller accepts."""
