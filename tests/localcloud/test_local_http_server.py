"""localcloud.shared.LocalHTTPServer: a client that went away is not a traceback; a bug still is."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

import pytest

from localcloud.shared import LocalHTTPServer


@pytest.fixture
def server():
    httpd = LocalHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    try:
        yield httpd
    finally:
        httpd.server_close()


@pytest.mark.parametrize("gone", [ConnectionResetError, BrokenPipeError])
def test_a_client_that_went_away_prints_nothing(server, capsys, gone) -> None:
    try:
        raise gone("peer closed")
    except gone:
        server.handle_error(None, ("127.0.0.1", 1))
    assert capsys.readouterr().err == ""


def test_any_other_error_is_still_printed(server, capsys) -> None:
    try:
        raise ValueError("a bug in a handler")
    except ValueError:
        server.handle_error(None, ("127.0.0.1", 1))
    assert "ValueError: a bug in a handler" in capsys.readouterr().err


def test_threads_are_daemons_so_a_stuck_request_never_blocks_shutdown(server) -> None:
    assert server.daemon_threads is True
