"""The local S3 event poller's errors reach the demo's failure summary (a poller that fails must not
leave the demo waiting for an event that never comes)."""

from __future__ import annotations

from localcloud.demo.summary import DemoResult, Progress, print_summary


def test_poller_errors_are_printed_when_the_demo_fails(capsys) -> None:
    errors = [f"EndpointConnectionError: Could not connect #{index}" for index in range(7)]
    result = DemoResult(exit_code=1, reason="no dataset accepted", poller_errors=errors)
    print_summary(result, Progress(), 1.0)
    out = capsys.readouterr().out
    assert "FAILED (exit 1): no dataset accepted" in out
    assert "S3 event poller errors (7, last 5):" in out
    assert "#6" in out and "#2" in out and "#1" not in out


def test_a_successful_demo_does_not_print_them(capsys) -> None:
    print_summary(DemoResult(exit_code=0, poller_errors=["ReadTimeoutError: x"]), Progress(), 1.0)
    assert "poller" not in capsys.readouterr().out
