"""The error taxonomy (pipeline.errors): which failures are transient (retry) and which are data."""

from __future__ import annotations

import http.client
import zipfile
import zlib

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from pipeline.errors import TransientError, is_transient, transient_cause
from pipeline.ingest.unzip import ArchiveRejectedError


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
    )


@pytest.mark.parametrize(
    "error",
    [
        client_error("ThrottlingException", 400),
        client_error("SlowDown", 503),
        client_error("RequestLimitExceeded", 400),
        client_error("ProvisionedThroughputExceededException", 400),
        client_error("InternalError", 500),
        client_error("ServiceUnavailable", 503),
        client_error("AnythingElse", 502),
        client_error("TooManyRequests", 429),
        ReadTimeoutError(endpoint_url="https://s3"),
        ConnectTimeoutError(endpoint_url="https://s3"),
        EndpointConnectionError(endpoint_url="https://s3"),
        ConnectionClosedError(endpoint_url="https://s3"),
        ResponseStreamingError(error="reset"),
        IncompleteReadError(actual_bytes=1, expected_bytes=2),
        http.client.IncompleteRead(b"x", 10),
        TimeoutError("socket timed out"),
        ConnectionResetError("reset by peer"),
        TransientError("short ranged read"),
    ],
    ids=lambda error: (
        type(error).__name__
        + (f"-{error.response['Error']['Code']}" if isinstance(error, ClientError) else "")
    ),
)
def test_aws_and_network_failures_are_transient(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        client_error("AccessDenied", 403),
        client_error("NoSuchKey", 404),
        client_error("ValidationException", 400),
        zipfile.BadZipFile("File is not a zip file"),
        zlib.error("invalid distance"),
        ArchiveRejectedError("too many members"),
        ValueError("bad data"),
        OSError("negative seek position"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_data_and_other_errors_are_not(error: BaseException) -> None:
    assert not is_transient(error)


def test_a_timeout_wrapped_by_zipfile_is_still_transient() -> None:
    """zipfile raises BadZipFile("File is not a zip file") while handling the reader's OSError."""
    timeout = ReadTimeoutError(endpoint_url="https://s3")
    try:
        try:
            raise timeout
        except OSError:
            raise zipfile.BadZipFile("File is not a zip file")  # noqa: B904 (zipfile's own pattern)
    except zipfile.BadZipFile as wrapped:
        assert transient_cause(wrapped) is timeout
