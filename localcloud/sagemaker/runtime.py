"""sagemaker-runtime InvokeEndpoint: ``POST /endpoints/<name>/invocations`` (rest-json protocol).

Content-Type, Accept and the custom-attributes header pass through to the model server; the model's
answer comes back verbatim on 2xx, and as a ``ModelError`` (HTTP 424, original status and message)
otherwise, as SageMaker does.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from localcloud.sagemaker.backend import SageMakerBackend
from localcloud.sagemaker.exceptions import SageMakerError

INVOCATIONS_PATH = re.compile(r"^/endpoints/(?P<name>[^/]+)/invocations/?$")
PASSTHROUGH_HEADERS = ("Content-Type", "Accept", "X-Amzn-SageMaker-Custom-Attributes")


def match_invocation(path: str) -> str | None:
    match = INVOCATIONS_PATH.match(path.split("?", 1)[0])
    return unquote(match.group("name")) if match else None


def handle_invoke(
    backend: SageMakerBackend, endpoint_name: str, body: bytes, headers: Any
) -> tuple[int, dict[str, str], bytes | dict[str, Any]]:
    """Returns (status, headers, body); body is bytes on success or an error dict to JSON-encode."""
    try:
        forwarded = {name: headers[name] for name in PASSTHROUGH_HEADERS if headers.get(name)}
        forwarded.setdefault("Content-Type", "application/octet-stream")
        forwarded.setdefault("Accept", "application/json")
        return backend.invoke_endpoint(endpoint_name, body, forwarded)
    except SageMakerError as error:
        return error.status, {"x-amzn-ErrorType": error.code}, error.body()
