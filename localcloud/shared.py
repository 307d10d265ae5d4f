"""Names every part of the local cloud shares: the account id, a free-port probe, the HTTP server.

(The repository root is ``localcloud.environment.containerenv.REPO_ROOT``.)
"""

from __future__ import annotations

import socket
import sys
from http.server import ThreadingHTTPServer

ACCOUNT_ID = "123456789012"  # moto's default account: the ARNs we make must match moto's.


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalHTTPServer(ThreadingHTTPServer):
    """The local cloud's threaded HTTP server: daemon threads, and no traceback for a client that
    went away (a timed-out SDK call, a fault-injected dropped connection); other errors are printed."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]
