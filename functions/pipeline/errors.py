"""The pipeline's error taxonomy, defined once (docs/contracts.md, "Error taxonomy", says the same).

- Permanent: the input itself is bad (a bad zip, a bad image, a bad layout, an image the model
  refuses with a 4xx). Retrying cannot help, so the outcome is recorded (a rejection report, a
  skipped-member count, a ``failed`` classify result) and the invocation succeeds.
- Transient: AWS or the network failed (throttling, 5xx, timeouts, dropped connections, short
  reads, an endpoint that is not InService yet). Nothing is recorded as a decision: the error
  propagates so Lambda retries the event, then sends it to the failure queue (``cli redrive``).

Code that catches broad exception types to turn bad data into a decision (zipfile raises OSError
for both) asks ``is_transient`` first and re-raises what it says is transient.
"""

from __future__ import annotations

import http.client
import socket
from typing import Any

from botocore.exceptions import (
    ClientError,
    HTTPClientError,
    IncompleteReadError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

# AWS error codes that mean "try again later", whatever the service (botocore's standard retry mode
# treats the same codes as retryable; they are listed here so our own code agrees with it).
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "ServiceFailure",
    }
)


class PermanentError(ValueError):
    """Bad input: record the outcome, do not retry."""


class TransientError(RuntimeError):
    """A failure of AWS or the network that our own code detected (a short ranged read, an endpoint
    still busy after the in-invocation retries): propagate it so Lambda retries."""


def client_error_status(error: ClientError) -> int:
    """HTTP status of a ClientError (0 when botocore did not record one)."""
    metadata = error.response.get("ResponseMetadata", {}) or {}
    return int(metadata.get("HTTPStatusCode") or 0)


def _transient_itself(error: BaseException) -> bool:
    if isinstance(error, TransientError):
        return True
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = client_error_status(error)
        return code in THROTTLING_CODES or code in TRANSIENT_CODES or status == 429 or status >= 500
    # ReadTimeoutError, ConnectionClosedError, ResponseStreamingError (HTTPClientError);
    # EndpointConnectionError, ConnectTimeoutError (botocore's ConnectionError); IncompleteReadError.
    if isinstance(error, HTTPClientError | BotoConnectionError | IncompleteReadError):
        return True
    # The same failures raised below botocore (a body read from a dropped connection).
    if isinstance(error, http.client.IncompleteRead | TimeoutError | ConnectionError | socket.timeout):
        return True
    module = type(error).__module__
    return module.startswith("urllib3") and type(error).__name__ in (
        "ProtocolError",
        "ReadTimeoutError",
        "IncompleteRead",
    )


def transient_cause(error: BaseException) -> BaseException | None:
    """The AWS/network failure behind ``error`` (itself or one it was raised from), or None.

    Walks the exception chain: zipfile turns an OSError from the reader (botocore's ReadTimeoutError
    is one) into ``BadZipFile("File is not a zip file")``, raised while handling the original.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if _transient_itself(current):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def is_transient(error: BaseException) -> bool:
    """True for AWS/network failures (retry), False for everything else (a decision about the data)."""
    return transient_cause(error) is not None


def reraise_if_transient(error: BaseException) -> None:
    """Raise the AWS/network failure behind ``error``, if there is one; return otherwise.

    Raises the original failure (not the wrapper) so logs and the failure queue name what went wrong.
    """
    cause = transient_cause(error)
    if cause is not None:
        raise cause.with_traceback(cause.__traceback__) from None


def describe(error: BaseException) -> dict[str, Any]:
    """Short log fields for an error: its type, transient or not, and the AWS code if any."""
    fields: dict[str, Any] = {"error_type": type(error).__name__, "transient": is_transient(error)}
    if isinstance(error, ClientError):
        fields["aws_code"] = str(error.response.get("Error", {}).get("Code", ""))
    return fields
