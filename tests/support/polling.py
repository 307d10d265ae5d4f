"""One way for a test to wait for something another process or thread does: poll a condition until a
deadline, never sleep a fixed time and hope.

The interval only bounds how late the test notices; the deadline is what fails it, with the last value
seen, so a hang reads as "X never became Y (last: ...)" instead of a pytest-timeout stack dump.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _truthy(value: Any) -> bool:
    return bool(value)


def wait_until(
    fetch: Callable[[], T],
    until: Callable[[T], bool] = _truthy,
    *,
    timeout_s: float,
    interval_s: float = 0.1,
    what: str = "the condition",
) -> T:
    """Call ``fetch`` until ``until(value)`` holds (by default: the value is truthy); return that value.

    Raises AssertionError naming ``what`` and the last value once ``timeout_s`` has passed.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = fetch()
        if until(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not hold within {timeout_s} s; last value: {value!r}")
        time.sleep(interval_s)
