"""A threaded HTTP server on 127.0.0.1 serving SageMaker's control plane and runtime on one port.

server = SageMakerServer(state_dir=Path(".localcloud/sagemaker"), s3_endpoint_url=moto_url,
                         on_event=router.put_event)
server.start()   # then AWS_ENDPOINT_URL_SAGEMAKER = AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME = server.url
server.stop()    # stops every job and endpoint process
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from localcloud.faults.spec import FaultInjector
from localcloud.logs.shipper import LogShipper
from localcloud.sagemaker.backend import SageMakerBackend
from localcloud.sagemaker.events import EventCallback
from localcloud.sagemaker.registry import BackendContext, LogCallback, RoleSessions
from localcloud.sagemaker.responses import JSON_CONTENT_TYPE, handle_control_plane
from localcloud.sagemaker.runtime import handle_invoke, match_invocation
from localcloud.shared import LocalHTTPServer

logger = logging.getLogger("localcloud.sagemaker.server")


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle on, the client's delayed ACK adds ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", "local")
        try:
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first (its read timeout): nobody is left to answer, as on AWS.
            self.close_connection = True

    def do_POST(self) -> None:
        body = self._read_body()
        backend = self.server.backend
        endpoint_name = match_invocation(self.path)
        if endpoint_name is not None:
            status, headers, payload = handle_invoke(backend, endpoint_name, body, self.headers)
            if isinstance(payload, dict):
                headers = {**headers, "Content-Type": "application/json"}
                payload = json.dumps(payload).encode()
            self._send(status, headers, payload)
            return
        status, result = handle_control_plane(backend, self.headers.get("X-Amz-Target"), body)
        self._send(status, {"Content-Type": JSON_CONTENT_TYPE}, json.dumps(result).encode())

    def do_GET(self) -> None:
        if self.path == "/ping":  # liveness for whoever starts us
            self._send(200, {"Content-Type": "text/plain"}, b"ok")
            return
        self._send(404, {"Content-Type": "application/json"}, b'{"message": "not found"}')


class _HTTPServer(LocalHTTPServer):
    def __init__(self, address: tuple[str, int], backend: SageMakerBackend) -> None:
        super().__init__(address, _Handler)
        self.backend = backend


class SageMakerServer:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: Path = Path(".localcloud/sagemaker"),
        s3_endpoint_url: str | None = None,
        training_python: Path | None = None,
        on_event: EventCallback | None = None,
        region: str = "us-east-1",
        on_log: LogCallback | None = None,
        max_concurrent_jobs: int | None = None,
        endpoint_start_timeout: float = 180.0,
        faults: FaultInjector | None = None,
        serverless_endpoint_events: bool | None = None,  # None: LOCALCLOUD_SERVERLESS_ENDPOINT_EVENTS
        logs: LogShipper | None = None,  # CloudWatch Logs for jobs and endpoints; None: files only
        iam: RoleSessions | None = None,  # localcloud.iam: act as execution roles; None: unchecked
    ) -> None:
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError("the emulator listens on 127.0.0.1 only")
        self.backend = SageMakerBackend(
            BackendContext(
                state_dir=state_dir,
                region=region,
                s3_endpoint_url=s3_endpoint_url,
                training_python=training_python,
                on_event=on_event,
                on_log=on_log,
                max_concurrent_jobs=max_concurrent_jobs,
                endpoint_start_timeout=endpoint_start_timeout,
                faults=faults,
                serverless_endpoint_events=serverless_endpoint_events,
                logs=logs,
                iam=iam,
            )
        )
        self._httpd = _HTTPServer((host, port), self.backend)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SageMakerServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="sagemaker-http", daemon=True)
        self._thread.start()
        return self

    def wait_for_events(self) -> None:
        """Block until every event emitted so far has been delivered to on_event."""
        self.backend.wait_for_events()

    def stop(self) -> None:
        self.backend.shutdown()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> SageMakerServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
