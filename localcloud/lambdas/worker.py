"""A warm Lambda sandbox: one process per function, invoked over a pipe.

Started by :mod:`localcloud.lambdas.runner` with the function's environment already set and
``argv = [handler, code_dir, *extra_sys_path]``. It reads one JSON request per line on stdin
(``{"event", "request_id", "deadline_ms"}``) and answers one JSON line on the pipe that was stdout;
anything the handler prints goes to stderr (the function's log), never into the protocol. Each
invocation is bracketed on stderr by ``PLATFORM_MARKER`` lines, which the runner's log pump
(``localcloud/logs/lambda_logs.py``) turns into Lambda's START/END/REPORT lines.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

# Starts a line of ours on the handler's stderr: on the same stream as the handler's output, so the
# START/END/REPORT lines made from it stay in order with that output.
PLATFORM_MARKER = "\x1flocalcloud-platform "
_REPO_ROOT = Path(__file__).resolve().parents[2]


class LambdaContext:
    """The attributes and method of the Lambda Python context object that handlers use."""

    def __init__(self, request_id: str, deadline_ms: int) -> None:
        name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        region = os.environ.get("AWS_REGION", "us-east-1")
        self.function_name = name
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = os.environ.get(
            "LOCALCLOUD_FUNCTION_ARN", f"arn:aws:lambda:{region}:123456789012:function:{name}"
        )
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", f"/aws/lambda/{name}")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error_payload(error: BaseException) -> dict[str, Any]:
    return {
        "errorMessage": str(error),
        "errorType": type(error).__name__,
        "stackTrace": traceback.format_tb(error.__traceback__),
    }


def main() -> None:
    handler_path, code_dir, *extra_paths = sys.argv[1:]
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # the handler's prints join its log on stderr
    sys.stdout = sys.stderr
    # The dev venv's editable install of the repository root (localcloud, cli, tools) is no part of a
    # Lambda: without it a handler that imports them fails here as it would in AWS.
    kept = [p for p in sys.path if Path(p or os.curdir).resolve() != _REPO_ROOT]
    sys.path[:] = kept  # the repository root is not on a Lambda's path (see above)
    for path in [code_dir, *extra_paths][::-1]:
        sys.path.insert(0, path)  # as Lambda's runtime: the function's code dir, then each layer's python/
    module_name, _, function_name = handler_path.rpartition(".")
    init_started = time.monotonic()
    init_error: dict[str, Any] | None = None
    handler = None
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as error:  # an import-time failure is reported on every invocation, like Lambda
        init_error = _error_payload(error)
        init_error["errorType"] = f"Runtime.ImportModuleError: {init_error['errorType']}"
        traceback.print_exc()
    init_ms: float | None = (time.monotonic() - init_started) * 1000
    for line in sys.stdin:
        request = json.loads(line)
        context = LambdaContext(request["request_id"], request["deadline_ms"])
        print(f"{PLATFORM_MARKER}start {context.aws_request_id}", file=sys.stderr, flush=True)
        started = time.monotonic()
        if init_error is not None:
            reply: dict[str, Any] = {"ok": False, "payload": init_error}
        else:
            try:
                result = handler(request["event"], context)  # type: ignore[misc]
                reply = {"ok": True, "payload": json.loads(json.dumps(result, default=str))}
            except Exception as error:  # the runner applies Lambda's retry rules
                traceback.print_exc()
                reply = {"ok": False, "payload": _error_payload(error)}
        duration_ms = (time.monotonic() - started) * 1000
        max_memory_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # KiB on Linux
        init = f"{init_ms:.2f}" if init_ms is not None else ""
        end = f"end {context.aws_request_id} {duration_ms:.2f} {max_memory_mb} {init}"
        print(f"{PLATFORM_MARKER}{end}", file=sys.stderr, flush=True)
        init_ms = None  # Init Duration: on an environment's first invocation only
        protocol.write(json.dumps(reply) + "\n")
        protocol.flush()


if __name__ == "__main__":
    main()
