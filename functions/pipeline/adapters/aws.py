"""boto3 clients, created the one way that honours ``AWS_ENDPOINT_URL_<SERVICE>`` (no hard-coded URLs).

boto3 is imported by the first ``client()`` call, not by importing this module: importing boto3
costs ~150 ms, which would otherwise be part of every function's cold start (the handler modules
import the adapters). Clients are cached per process, so a warm sandbox reuses them.
"""

from __future__ import annotations

import os
import threading
from typing import Any

_clients: dict[str, Any] = {}
# boto3's default session is not thread-safe while it creates clients (ingest runs worker threads).
_lock = threading.Lock()
# Optional: botocore's read timeout (default 60 s). A function's environment may set it where a
# stalled call should fail (and be retried) sooner; the local cloud's fault runs set a few seconds.
READ_TIMEOUT_ENV = "BOTO_READ_TIMEOUT_SECONDS"


def client(service: str) -> Any:
    """A cached boto3 client; endpoint, region and credentials come from the environment."""
    cached = _clients.get(service)
    if cached is not None:
        return cached
    with _lock:
        if service not in _clients:
            import boto3
            from botocore.config import Config

            # Standard retry mode with a few attempts: throttling on SageMaker control-plane calls is
            # common. More connections than botocore's 10: threads share one client (ingest's part
            # uploads and read-ahead), and a call must never wait for a free connection.
            read_timeout = float(os.environ.get(READ_TIMEOUT_ENV) or 60)
            config = Config(
                retries={"max_attempts": 5, "mode": "standard"},
                max_pool_connections=64,
                read_timeout=read_timeout,
            )
            _clients[service] = boto3.client(service, config=config)
        return _clients[service]


def clear_clients() -> None:
    """Forget the cached clients (tests drop them between moto mocks)."""
    with _lock:
        _clients.clear()


def error_code(error: Exception) -> str:
    """The AWS error code of a botocore ClientError ("" for anything else)."""
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
