"""URL import against moto S3 and a real HTTP server on 127.0.0.1 started by the test: streaming
into a multipart upload, HTTP errors, non-zip bodies, size limits, dropped connections (the
multipart upload is aborted, nothing lands in uploads/), redirects, URL and name checks."""

from __future__ import annotations

import contextlib
import io
import os
import threading
import zipfile
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fn_support import ENV

from pipeline.url_import import (
    ImportLimits,
    ImportRequest,
    UrlImportRejectedError,
    UrlImportTransientError,
    check_name,
    check_url,
    import_url,
    name_from_url,
)

BUCKET = ENV["DATASET_BUCKET"]
MiB = 1024**2
LIMITS = ImportLimits(max_bytes=64 * MiB, part_bytes=5 * MiB, allow_loopback_http=True, timeout_s=5)


def make_zip(payload_bytes: int) -> bytes:
    """A valid zip with one stored (uncompressed) member of random bytes: its size is the body's."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("dogImages/train/001.Affenpinscher/a.jpg", os.urandom(payload_bytes))
    return buffer.getvalue()


BIG_ZIP = make_zip(11 * MiB)  # three 5 MiB parts
SMALL_ZIP = make_zip(1000)


Route = Callable[[BaseHTTPRequestHandler], None]


def send(status: int, body: bytes, length: int | None = None, content_type: str = "application/zip") -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        if length is not None:
            handler.send_header("Content-Length", str(length))
        handler.end_headers()
        handler.wfile.write(body)

    return route


def redirect(location: str) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return route


ROUTES: dict[str, Route] = {
    "/dogImages.zip": send(200, BIG_ZIP, len(BIG_ZIP)),
    "/small.zip": send(200, SMALL_ZIP, len(SMALL_ZIP)),
    # HTTP/1.0 without Content-Length: the body ends when the server closes the connection.
    "/no-length.zip": send(200, BIG_ZIP),
    "/missing.zip": send(404, b"not here", 8, "text/plain"),
    "/forbidden.zip": send(403, b"", 0),
    "/error.zip": send(503, b"busy", 4, "text/plain"),
    "/throttled.zip": send(429, b"", 0),
    "/page.zip": send(200, b"<html>a login page</html>", 25, "text/html"),
    "/claims-too-big.zip": send(200, b"", 10 * 1024**3),
    # Sends 7 MiB of an announced 11 MiB, then closes: one part is already uploaded by then.
    "/drops.zip": send(200, BIG_ZIP[: 7 * MiB], len(BIG_ZIP)),
    # No length and cut short: indistinguishable from a complete body except by the zip's end record.
    "/cut.zip": send(200, BIG_ZIP[: 7 * MiB]),
    "/redirect-ok": redirect("/small.zip"),
    "/redirect-private": redirect("https://10.1.2.3/x.zip"),
    "/redirect-http": redirect("http://example.com/x.zip"),
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        route = ROUTES.get(self.path.split("?")[0])
        if route is None:
            self.send_error(404)
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up first
            route(self)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def run(aws: Any, url: str, name: str = "dogImages", limits: ImportLimits = LIMITS, **kw: Any) -> dict:
    request = ImportRequest.from_event({"url": url, "name": name}, limits)
    return import_url(request, BUCKET, aws.s3, limits, **kw)


def nothing_landed(aws: Any) -> bool:
    return aws.keys(BUCKET, "uploads/") == [] and not aws.s3.list_multipart_uploads(Bucket=BUCKET).get(
        "Uploads"
    )


# ------------------------------------------------------------------ streaming


def test_a_zip_streams_into_uploads_as_a_multipart_object(aws, server) -> None:
    result = run(aws, f"{server}/dogImages.zip")
    body = aws.s3.get_object(Bucket=BUCKET, Key="uploads/dogImages.zip")["Body"].read()
    assert body == BIG_ZIP
    head = aws.s3.head_object(Bucket=BUCKET, Key="uploads/dogImages.zip")
    assert head["ETag"].strip('"').endswith("-3")  # 11 MiB in parts of 5 MiB: S3 counted three parts
    assert head["ContentType"] == "application/zip"
    assert head["Metadata"] == {"source-url": f"{server}/dogImages.zip"}
    assert result["status"] == "imported" and result["key"] == "uploads/dogImages.zip"
    assert result["bytes"] == len(BIG_ZIP) == head["ContentLength"]
    assert not aws.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")


def test_a_body_without_content_length_is_counted_and_checked(aws, server) -> None:
    run(aws, f"{server}/no-length.zip", name="counted")
    assert aws.s3.get_object(Bucket=BUCKET, Key="uploads/counted.zip")["Body"].read() == BIG_ZIP


def test_a_small_zip_is_one_part_and_redirects_within_the_rules_are_followed(aws, server) -> None:
    run(aws, f"{server}/redirect-ok", name="small.zip")  # ".zip" in the name is optional
    assert aws.s3.get_object(Bucket=BUCKET, Key="uploads/small.zip")["Body"].read() == SMALL_ZIP


def test_the_query_string_is_not_stored(aws, server) -> None:
    run(aws, f"{server}/small.zip?X-Amz-Signature=secret", name="signed")
    head = aws.s3.head_object(Bucket=BUCKET, Key="uploads/signed.zip")
    assert head["Metadata"] == {"source-url": f"{server}/small.zip"}


# ------------------------------------------------------------------ permanent failures


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/missing.zip", "HTTP 404"),
        ("/forbidden.zip", "HTTP 403"),
        ("/page.zip", "did not send a zip archive"),
        ("/claims-too-big.zip", "the limit is 67108864"),
        ("/redirect-private", "10.1.2.3 is not a public address"),
        ("/redirect-http", "only https:// URLs"),
    ],
)
def test_permanent_failures_are_rejected_before_anything_is_written(aws, server, path, message) -> None:
    with pytest.raises(UrlImportRejectedError, match=message):
        run(aws, f"{server}{path}")
    assert nothing_landed(aws)


def test_a_body_over_the_limit_while_streaming_aborts_the_upload(aws, server) -> None:
    small_limit = ImportLimits(max_bytes=8 * MiB, part_bytes=5 * MiB, allow_loopback_http=True)
    with pytest.raises(UrlImportRejectedError, match="over the limit of 8388608"):
        run(aws, f"{server}/no-length.zip", limits=small_limit)  # no Content-Length to refuse up front
    assert nothing_landed(aws)


def test_running_out_of_function_time_aborts_the_upload(aws, server) -> None:
    with pytest.raises(UrlImportRejectedError, match="did not finish within the function's time"):
        run(aws, f"{server}/dogImages.zip", remaining_s=lambda: 5.0)
    assert nothing_landed(aws)


# ------------------------------------------------------------------ transient failures


@pytest.mark.parametrize("path", ["/error.zip", "/throttled.zip"])
def test_server_errors_and_throttling_are_transient(aws, server, path) -> None:
    with pytest.raises(UrlImportTransientError, match=r"HTTP (503|429)"):
        run(aws, f"{server}{path}")
    assert nothing_landed(aws)


def test_a_connection_dropped_mid_body_aborts_the_multipart_upload(aws, server) -> None:
    with pytest.raises(UrlImportTransientError, match=f"got {7 * MiB} of {len(BIG_ZIP)} bytes"):
        run(aws, f"{server}/drops.zip")
    assert nothing_landed(aws)


def test_a_close_delimited_body_cut_short_is_transient(aws, server) -> None:
    with pytest.raises(UrlImportTransientError, match="without a zip end record"):
        run(aws, f"{server}/cut.zip")
    assert nothing_landed(aws)


def test_a_refused_connection_is_transient(aws) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UrlImportTransientError, match="cannot reach"):
        run(aws, f"http://127.0.0.1:{port}/x.zip")
    assert nothing_landed(aws)


def test_a_host_name_that_resolves_to_a_private_address_is_refused_at_connect(aws) -> None:
    import socket

    with socket.socket() as listener:  # accepts TCP; the check refuses before any TLS is sent
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(UrlImportRejectedError, match=r"resolves to .*, which is not a public address"):
            run(aws, f"https://localhost:{port}/x.zip")
    assert nothing_landed(aws)


def test_s3_failures_propagate_and_abort(aws, server, monkeypatch) -> None:
    from botocore.exceptions import ClientError

    calls = {"n": 0}
    real = aws.s3.upload_part

    def throttled_second_part(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ClientError(
                {"Error": {"Code": "SlowDown", "Message": "Reduce your request rate"}}, "UploadPart"
            )
        return real(**kwargs)

    monkeypatch.setattr(aws.s3, "upload_part", throttled_second_part)
    with pytest.raises(ClientError, match="SlowDown"):
        run(aws, f"{server}/dogImages.zip")
    assert calls["n"] == 2
    assert nothing_landed(aws)


# ------------------------------------------------------------------ URL and name checks


@pytest.mark.parametrize(
    ("url", "allow", "message"),
    [
        ("http://example.com/d.zip", True, "only https://"),
        ("http://127.0.0.1:8000/d.zip", False, "only https://"),
        ("http://localhost:8000/d.zip", True, "only https://"),
        ("http://127.0.0.2/d.zip", True, "only https://"),
        ("ftp://example.com/d.zip", True, "only https://"),
        ("file:///etc/passwd", True, "no host"),
        ("https://169.254.169.254/latest/meta-data", True, "not a public address"),
        ("https://127.0.0.1/d.zip", True, "not a public address"),
        ("https://[::1]/d.zip", True, "not a public address"),
        ("https://192.168.1.10/d.zip", True, "not a public address"),
        ("https://user:pw@example.com/d.zip", True, "credentials"),
        ("https://example.com/dög.zip", True, "ASCII"),
        ("https://example.com:99999/d.zip", True, "not a valid URL"),
    ],
)
def test_urls_that_are_refused(url, allow, message) -> None:
    with pytest.raises(UrlImportRejectedError, match=message):
        check_url(url, allow)


@pytest.mark.parametrize(
    "url",
    ["https://s3-us-west-1.amazonaws.com/udacity-aind/dog-project/dogImages.zip", "https://8.8.8.8/d.zip"],
)
def test_urls_that_are_accepted(url) -> None:
    assert check_url(url, False) == url


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden", "a..b", "x" * 101, "näme", "a b"])
def test_unsafe_names_are_refused(name) -> None:
    with pytest.raises(UrlImportRejectedError, match="not a safe key"):
        check_name(name)


def test_names() -> None:
    assert check_name("dogImages.zip") == "dogImages"
    assert name_from_url("https://h.example/a/dog%20Images%20(v2).zip?sig=1") == "dog-Images-v2"
    assert name_from_url("https://h.example/") == "dataset"
    request = ImportRequest.from_event({"url": "https://h.example/dogImages.zip"}, LIMITS)
    assert request.key == "uploads/dogImages.zip"
    for bad in (None, "https://x", {"name": "n"}, {"url": 5}):
        with pytest.raises(UrlImportRejectedError, match="expected"):
            ImportRequest.from_event(bad, LIMITS)


def test_limits_must_fit_s3_multipart_rules() -> None:
    with pytest.raises(ValueError, match="below S3's minimum"):
        ImportLimits(part_bytes=1 * MiB)
    with pytest.raises(ValueError, match="more than 10000 parts"):
        ImportLimits(max_bytes=200 * 1024**3, part_bytes=16 * MiB)


# ------------------------------------------------------------------ the handler


@pytest.fixture
def handler(aws, monkeypatch):
    from pipeline.settings import get_settings

    monkeypatch.setenv("URL_IMPORT_ALLOW_LOOPBACK_HTTP", "true")
    monkeypatch.setenv("URL_IMPORT_PART_BYTES", str(5 * MiB))
    get_settings.cache_clear()
    from pipeline.handlers import import_url

    yield import_url.handler
    get_settings.cache_clear()


def test_handler_imports_and_returns_the_object(handler, aws, server, lambda_context) -> None:
    result = handler({"url": f"{server}/dogImages.zip", "name": "dogs"}, lambda_context)
    assert result["status"] == "imported"
    assert aws.s3.get_object(Bucket=BUCKET, Key="uploads/dogs.zip")["Body"].read() == BIG_ZIP
    assert aws.notifications() == []


def test_handler_records_a_permanent_failure_without_raising(handler, aws, server, lambda_context) -> None:
    result = handler({"url": f"{server}/page.zip?token=secret", "name": "dogs"}, lambda_context)
    assert result["status"] == "rejected" and "did not send a zip archive" in result["reason"]
    [note] = aws.notifications()
    assert note["subject"] == "URL import rejected: dogs"
    assert note["message"]["url"] == f"{server}/page.zip"  # never the query string
    assert nothing_landed(aws)
    bad = handler({"url": "http://example.com/x.zip"}, lambda_context)
    assert bad["status"] == "rejected" and "only https://" in bad["reason"]


def test_handler_raises_a_transient_failure_for_lambda_to_retry(handler, aws, server, lambda_context) -> None:
    with pytest.raises(UrlImportTransientError):
        handler({"url": f"{server}/error.zip", "name": "dogs"}, lambda_context)
    assert aws.notifications() == []
