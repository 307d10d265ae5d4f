"""Names every part of the local cloud shares: the account id and a free-port probe.

(The repository root is ``localcloud.containerenv.REPO_ROOT``.)
"""

from __future__ import annotations

import socket

ACCOUNT_ID = "123456789012"  # moto's default account: the ARNs we make must match moto's.


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
