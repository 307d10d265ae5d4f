"""An S3 endpoint on 127.0.0.1 that forwards to moto and injects throttling and read timeouts.

Only the Lambda functions are pointed at it (their ``AWS_ENDPOINT_URL_S3``), so the faults hit the
code under test and nothing else. Per request, ``FaultInjector.s3_fault()`` decides:

- ``throttle``: answer ``503 SlowDown`` in S3's XML error shape, without forwarding (S3 throttles
  before it acts);
- ``timeout``: hold the request, unanswered and not forwarded, for ``s3_stall_s`` (longer than the
  functions' read timeout), then drop the connection: the client sees a ``ReadTimeoutError``;
- nothing: forward it and relay moto's answer.

Bodies are small here (sample datasets, images), so requests and answers are buffered whole.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from localcloud.faults.spec import FaultInjector
from localcloud.shared import LocalHTTPServer

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
)
SLOW_DOWN = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    "<Message>Please reduce your request rate.</Message><RequestId>{}</RequestId></Error>"
)


class S3FaultProxy:
    def __init__(self, upstream_url: str, injector: FaultInjector) -> None:
        upstream = urlsplit(upstream_url)
        self.injector = injector
        self._stopping = threading.Event()
        proxy = self

        class Handler(ProxyHandler):
            upstream_host = upstream.hostname or "127.0.0.1"
            upstream_port = upstream.port or 80
            owner = proxy

        self._httpd = LocalHTTPServer(("127.0.0.1", 0), Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> S3FaultProxy:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="s3-fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases stalled requests at once
        self._httpd.shutdown()
        self._httpd.server_close()


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's pool expects
    upstream_host: str
    upstream_port: int
    owner: S3FaultProxy

    def log_message(self, format: str, *args: object) -> None:
        pass

    def handle(self) -> None:
        # The client may give up on the connection (its read timeout, or a closed pool): no traceback.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            super().handle()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        body = self._read_body()
        fault = self.owner.injector.s3_fault()
        if fault == "timeout":
            self.owner._stopping.wait(self.owner.injector.spec.s3_stall_s)
            self.close_connection = True  # never answered: the client's read timeout fires first
            return
        if fault == "throttle":
            payload = SLOW_DOWN.format(uuid.uuid4().hex[:16].upper()).encode()
            self.send_response_only(503, "Slow Down")
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            return
        self._forward(body)

    def _forward(self, body: bytes) -> None:
        """Send the request on to the upstream and relay its answer (localcloud.iam.proxy uses it too)."""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if body or self.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        connection = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=300)
        try:
            connection.request(self.command, self.path, body=body or None, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except OSError:
            self.close_connection = True  # moto went away (shutting down): drop the call
            return
        finally:
            connection.close()
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        if self.command == "HEAD":  # the object's size, with no body
            self.send_header("Content-Length", response.getheader("Content-Length", "0"))
        else:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815 - http.server's names
