"""boto3 clients, created the one way that honours ``AWS_ENDPOINT_URL_<SERVICE>`` (no hard-coded URLs)."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# Standard retry mode with a few attempts: throttling on SageMaker control-plane calls is common.
_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=64)


@cache
def client(service: str) -> Any:
    """A cached boto3 client; endpoint, region and credentials come from the environment."""
    return boto3.client(service, config=_CONFIG)


def error_code(error: Exception) -> str:
    """The AWS error code of a botocore ClientError ("" for anything else)."""
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
