"""Lambda's Invoke API (``POST /2015-03-31/functions/{name}/invocations``) over the local runner, so
``boto3.client("lambda").invoke(...)`` (the CLI's ``import-url`` and ``redrive``) works locally as on
AWS. Only Invoke is served: ``RequestResponse`` (one attempt, the handler's result or its error
with ``X-Amz-Function-Error: Unhandled``), ``Event`` (202, queued with the async retries and
destinations) and ``DryRun`` (204). The function is named by name, logical id or ARN, with an
optional ``:$LATEST`` qualifier. Binds to 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

from localcloud.lambdas.runner import InvocationError, LambdaRunner
from localcloud.shared import LocalHTTPServer

INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")


class LambdaInvokeServer:
    def __init__(self, runner: Callable[[], LambdaRunner | None], host: str = "127.0.0.1", port: int = 0):
        self._runner = runner  # read per request: the runner is created after the server starts
        self._host = host
        self._httpd = LocalHTTPServer((host, port), self._handler_class())
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="lambda-api", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._httpd.server_port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                match = INVOKE_PATH.match(self.path.split("?")[0])
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not match:
                    self._error(404, "UnknownOperationException", f"not emulated: POST {self.path}")
                    return
                runner = server._runner()
                name = unquote(match["name"]).removesuffix(":$LATEST")
                try:
                    if runner is None:
                        raise KeyError(name)
                    spec = runner.function(name)
                except KeyError:
                    self._error(404, "ResourceNotFoundException", f"Function not found: {name}")
                    return
                try:
                    event = json.loads(body) if body else {}
                except json.JSONDecodeError as error:
                    self._error(400, "InvalidRequestContentException", f"Payload is not JSON: {error}")
                    return
                kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
                if kind == "DryRun":
                    self._reply(204, b"")
                elif kind == "Event":
                    runner.invoke_async(spec.name, event)
                    self._reply(202, b"")
                elif kind == "RequestResponse":
                    try:
                        payload, headers = runner.invoke(spec.name, event), {}
                    except InvocationError as error:
                        payload, headers = error.payload, {"X-Amz-Function-Error": "Unhandled"}
                    self._reply(200, json.dumps(payload, default=str).encode(), headers)
                else:
                    self._error(400, "InvalidParameterValueException", f"InvocationType {kind!r}")

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Amz-Executed-Version", "$LATEST")
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, code: str, message: str) -> None:
                body = json.dumps({"Type": "User", "message": message}).encode()
                self._reply(status, body, {"x-amzn-ErrorType": code})

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
