"""Import a dataset zip from a public HTTPS URL into ``uploads/<name>.zip`` (the seed's wget step).

The body is streamed into an S3 multipart upload through one reused part buffer, so memory stays
at about one part (``url_import_part_bytes``, 16 MiB) whatever the archive's size. Nothing half
written lands: on any failure the multipart upload is aborted, and S3 shows the object only when
``CompleteMultipartUpload`` succeeds, which is also the one S3 event that starts ingest.

HTTP is the standard library's ``urllib.request``: streaming, redirects and TLS are all it needs,
and it adds nothing to the Lambda layer (urllib3 is only in the runtime as botocore's dependency,
not something to pin our behaviour on).

Errors, by what a retry can change (pipeline.errors' taxonomy):
- ``UrlImportRejectedError`` (permanent): bad URL or name, an HTTP 4xx status, a body that is not a zip,
  a size over the limit, a download that cannot finish within the function's time. Recorded (SNS
  notification, returned as ``{"status": "rejected"}``) and not retried.
- ``UrlImportTransientError`` (and botocore errors, e.g. S3 throttling after botocore's own retries):
  connection refused/reset/dropped mid-body, timeouts, DNS failures, HTTP 5xx/408/425/429. Raised,
  so Lambda's asynchronous retries run again.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from posixpath import basename
from typing import Any
from urllib.parse import unquote, urlsplit

from pipeline.adapters.notify import Notifier
from pipeline.errors import PermanentError, TransientError
from pipeline.powertools import logger
from pipeline.settings import UrlImportSettings

UPLOADS_PREFIX = "uploads/"
ZIP_LOCAL_HEADER = b"PK\x03\x04"  # every non-empty zip starts with a local file header
ZIP_END_RECORD = b"PK\x05\x06"  # end-of-central-directory record: within the last 22 + 65535 bytes
ZIP_TAIL_BYTES = 22 + 65535
MIN_PART_BYTES = 5 * 1024**2  # S3's minimum for every part but the last
MAX_PARTS = 10_000  # S3's maximum number of parts
TRANSIENT_HTTP_STATUSES = frozenset({408, 425, 429})  # 4xx that mean "try again later"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
USER_AGENT = "dog-breed-pipeline-url-import/1"


class UrlImportRejectedError(PermanentError):
    """Permanent: retrying the same request cannot succeed."""


class UrlImportTransientError(TransientError):
    """Transient: the network or the server may do better on a retry."""


@dataclass(frozen=True)
class ImportLimits:
    max_bytes: int = 2 * 1024**3
    part_bytes: int = 16 * 1024**2
    allow_loopback_http: bool = False  # local tests only: http://127.0.0.1 and nothing else
    timeout_s: float = 30.0  # connect and each socket read
    reserve_s: float = 20.0  # stop (and abort) when less than this is left of the function's time

    def __post_init__(self) -> None:
        if self.part_bytes < MIN_PART_BYTES:
            raise ValueError(f"part size {self.part_bytes} is below S3's minimum of {MIN_PART_BYTES}")
        if self.max_bytes > self.part_bytes * MAX_PARTS:
            raise ValueError(f"max_bytes {self.max_bytes} needs more than {MAX_PARTS} parts")


@dataclass(frozen=True)
class ImportRequest:
    url: str
    name: str

    @property
    def key(self) -> str:
        return f"{UPLOADS_PREFIX}{self.name}.zip"

    @classmethod
    def from_event(cls, event: Any, limits: ImportLimits) -> ImportRequest:
        if not isinstance(event, dict) or not isinstance(event.get("url"), str):
            raise UrlImportRejectedError('expected {"url": "https://...", "name": "<optional dataset name>"}')
        url = check_url(event["url"], limits.allow_loopback_http)
        name = event.get("name")
        if name is None or name == "":
            name = name_from_url(url)
        if not isinstance(name, str):
            raise UrlImportRejectedError(f"name must be a string, got {type(name).__name__}")
        return cls(url=url, name=check_name(name))


def check_url(url: str, allow_loopback_http: bool) -> str:
    """The URL if it may be fetched: https to a public host name or address, or (local tests only)
    http://127.0.0.1. Literal private, loopback and link-local addresses are refused over https too
    (the instance metadata address among them); host names are checked against the address actually
    connected to (``_public_only_connection``)."""
    if not url.isascii():
        raise UrlImportRejectedError("the URL must be ASCII (percent-encode other characters)")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError as error:
        raise UrlImportRejectedError(f"not a valid URL: {error}") from error
    if parts.username or parts.password:
        raise UrlImportRejectedError("credentials in the URL are not accepted (use a presigned URL)")
    if not host:
        raise UrlImportRejectedError(f"no host in {url!r}")
    loopback_http = allow_loopback_http and parts.scheme == "http" and host == "127.0.0.1"
    if parts.scheme != "https" and not loopback_http:
        raise UrlImportRejectedError(f"only https:// URLs are imported, not {parts.scheme or 'no scheme'}://")
    if not loopback_http:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None  # a host name
        if address is not None and not address.is_global:
            raise UrlImportRejectedError(f"{host} is not a public address")
    if port == 0:
        raise UrlImportRejectedError("port 0 is not a valid port")
    return url


def check_name(name: str) -> str:
    """A safe object name: letters, digits, '.', '_', '-' (no slashes, no '..'); '.zip' optional."""
    if name.lower().endswith(".zip"):
        name = name[:-4]
    if not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise UrlImportRejectedError(
            f"name {name!r} is not a safe key: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def name_from_url(url: str) -> str:
    """The dataset name a URL suggests: its last path segment without '.zip' (sanitised)."""
    stem = basename(unquote(urlsplit(url).path)).removesuffix(".zip").removesuffix(".ZIP")
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._")[:100]
    return cleaned or "dataset"


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to URLs that pass the same checks (no https -> http, no private hosts)."""

    def __init__(self, allow_loopback_http: bool) -> None:
        self.allow_loopback_http = allow_loopback_http

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        check_url(newurl, self.allow_loopback_http)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _public_only_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
    """socket.create_connection that refuses a peer that is not a public address: a host name that
    resolves to a private, loopback or link-local address (or a numeric form like 2130706433) is
    caught here, at the address actually connected to, before any TLS or HTTP is sent."""
    sock = socket.create_connection(address, *args, **kwargs)
    peer = sock.getpeername()[0]
    if not ipaddress.ip_address(peer).is_global:
        sock.close()
        raise UrlImportRejectedError(f"{address[0]} resolves to {peer}, which is not a public address")
    return sock


class _PublicOnlyHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = _public_only_connection


class _PublicOnlyHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: Any) -> Any:
        return self.do_open(_PublicOnlyHTTPSConnection, req, context=self._context)  # type: ignore[attr-defined]


def open_url(url: str, limits: ImportLimits) -> http.client.HTTPResponse:
    """GET ``url``; a status other than 200 raises (4xx permanent, 5xx/408/425/429 transient)."""
    # No proxies (Lambda has none; a proxy would also hide the peer address checked below).
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        _CheckedRedirects(limits.allow_loopback_http),
        _PublicOnlyHTTPSHandler(),
    )
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    try:
        response = opener.open(request, timeout=limits.timeout_s)
    except urllib.error.HTTPError as error:
        error.close()
        if error.code >= 500 or error.code in TRANSIENT_HTTP_STATUSES:
            raise UrlImportTransientError(f"HTTP {error.code} {error.reason} from {_where(url)}") from error
        raise UrlImportRejectedError(f"HTTP {error.code} {error.reason} from {_where(url)}") from error
    except urllib.error.URLError as error:
        if isinstance(error.reason, UrlImportRejectedError):  # a redirect that failed our checks
            raise error.reason from error
        raise UrlImportTransientError(f"cannot reach {_where(url)}: {error.reason}") from error
    except (OSError, http.client.HTTPException) as error:
        raise UrlImportTransientError(f"cannot reach {_where(url)}: {error}") from error
    if response.status != 200:
        response.close()
        raise UrlImportRejectedError(f"HTTP {response.status} from {_where(url)} (expected 200)")
    return response


def import_url(
    request: ImportRequest,
    bucket: str,
    s3: Any,
    limits: ImportLimits,
    remaining_s: Callable[[], float] = lambda: float("inf"),
) -> dict[str, Any]:
    """Stream ``request.url`` into ``s3://bucket/uploads/<name>.zip``; returns what was imported."""
    started = time.perf_counter()
    response = open_url(request.url, limits)
    try:
        declared = response.headers.get("Content-Length")
        length = int(declared) if declared and declared.isdigit() else None
        if length is not None and length > limits.max_bytes:
            raise UrlImportRejectedError(f"the archive is {length} bytes; the limit is {limits.max_bytes}")
        buffer = bytearray(limits.part_bytes)  # the one part buffer, reused for every part
        filled = _read_into(response, memoryview(buffer), request.url)
        if filled < len(ZIP_LOCAL_HEADER) or bytes(buffer[: len(ZIP_LOCAL_HEADER)]) != ZIP_LOCAL_HEADER:
            raise UrlImportRejectedError(
                f"{_where(request.url)} did not send a zip archive "
                f"(first bytes {bytes(buffer[:8])!r}, Content-Type {response.headers.get('Content-Type')!r})"
            )
        upload_id = s3.create_multipart_upload(
            Bucket=bucket,
            Key=request.key,
            ContentType="application/zip",
            # Scheme, host and path only: a presigned URL's query string holds a signature.
            Metadata={"source-url": _where(request.url)[:1024]},
        )["UploadId"]
        try:
            parts, total, tail = _stream_parts(
                response, buffer, filled, request, bucket, s3, upload_id, limits, remaining_s
            )
            # readinto() reports a premature end of a Content-Length body as a plain end.
            if length is not None and total != length:
                raise UrlImportTransientError(f"got {total} of {length} bytes from {_where(request.url)}")
            if ZIP_END_RECORD not in tail:
                message = f"{_where(request.url)} sent {total} bytes without a zip end record"
                if length is None:  # a close-delimited body that stopped early looks the same
                    raise UrlImportTransientError(message + " (the connection may have closed early)")
                raise UrlImportRejectedError(message + ": not a complete zip archive")
            completed = s3.complete_multipart_upload(
                Bucket=bucket, Key=request.key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            _abort(s3, bucket, request.key, upload_id)
            raise
    finally:
        response.close()
    seconds = time.perf_counter() - started
    return {
        "status": "imported",
        "url": _where(request.url),
        "bucket": bucket,
        "key": request.key,
        "bytes": total,
        "parts": len(parts),
        "etag": str(completed.get("ETag", "")).strip('"'),
        "version_id": completed.get("VersionId"),
        "seconds": round(seconds, 3),
        "mb_per_s": round(total / 1024**2 / seconds, 1) if seconds > 0 else None,
    }


def _stream_parts(
    response: http.client.HTTPResponse,
    buffer: bytearray,
    filled: int,
    request: ImportRequest,
    bucket: str,
    s3: Any,
    upload_id: str,
    limits: ImportLimits,
    remaining_s: Callable[[], float],
) -> tuple[list[dict[str, Any]], int, bytes]:
    """Upload full buffers as parts until the body ends; returns parts, byte count and the tail."""
    view = memoryview(buffer)
    parts: list[dict[str, Any]] = []
    total = 0
    tail = b""
    while filled:
        total += filled
        if total > limits.max_bytes:
            raise UrlImportRejectedError(f"the archive is over the limit of {limits.max_bytes} bytes")
        if remaining_s() < limits.reserve_s:
            raise UrlImportRejectedError(
                f"the download did not finish within the function's time ({total} bytes so far); "
                "import a smaller archive or upload it directly"
            )
        chunk = buffer if filled == len(buffer) else buffer[:filled]
        tail = (tail + bytes(view[max(0, filled - ZIP_TAIL_BYTES) : filled]))[-ZIP_TAIL_BYTES:]
        number = len(parts) + 1
        # upload_part returns only once the part is stored, so the buffer can be refilled after it.
        etag = s3.upload_part(
            Bucket=bucket, Key=request.key, UploadId=upload_id, PartNumber=number, Body=chunk
        )["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
        filled = _read_into(response, view, request.url)
    return parts, total, tail


def _read_into(response: http.client.HTTPResponse, view: memoryview, url: str) -> int:
    """Fill ``view`` from the body; fewer bytes only at its end. Drops and timeouts are transient."""
    filled = 0
    try:
        while filled < len(view):
            count = response.readinto(view[filled:])
            if not count:
                break
            filled += count
    except (OSError, http.client.HTTPException) as error:  # reset, timeout, IncompleteRead
        raise UrlImportTransientError(f"the download from {_where(url)} broke off: {error!r}") from error
    return filled


def _abort(s3: Any, bucket: str, key: str, upload_id: str) -> None:
    try:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except Exception as error:  # the bucket's lifecycle rule removes it after a day anyway
        logger.warning("could not abort the multipart upload", extra={"key": key, "error": str(error)})


def _where(url: str) -> str:
    """scheme://host[:port]/path of a URL, without query or fragment (they may hold secrets)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def limits_from(settings: UrlImportSettings) -> ImportLimits:
    return ImportLimits(
        max_bytes=settings.url_import_max_bytes,
        part_bytes=settings.url_import_part_bytes,
        allow_loopback_http=settings.url_import_allow_loopback_http,
    )


def run_import(
    event: Any,
    settings: UrlImportSettings,
    s3: Any,
    notifier: Notifier,
    remaining_s: Callable[[], float] = lambda: float("inf"),
) -> dict[str, Any]:
    """The function's work: import, or record a permanent rejection (notification + returned status)
    and return normally so Lambda does not retry it. Transient errors propagate (Lambda retries)."""
    limits = limits_from(settings)
    request: ImportRequest | None = None
    try:
        request = ImportRequest.from_event(event, limits)
        result = import_url(request, settings.dataset_bucket, s3, limits, remaining_s)
    except UrlImportRejectedError as error:
        where = _where(request.url) if request else _describe_url(event)
        rejected = {
            "status": "rejected",
            "reason": str(error),
            "url": where,
            "key": request.key if request else None,
        }
        logger.warning("URL import rejected", extra=rejected)
        notifier.publish(f"URL import rejected: {request.name if request else where}", rejected)
        return rejected
    logger.info("URL imported", extra=result)
    return result


def _describe_url(event: Any) -> str:
    """What to call a URL that failed the checks, without its query string where it parses."""
    url = event.get("url") if isinstance(event, dict) else None
    if not isinstance(url, str):
        return "(no url)"
    try:
        return _where(url)[:200]
    except ValueError:
        return repr(url[:200])
