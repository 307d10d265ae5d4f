"""One Lambda execution environment's log: the worker's stderr, line by line, into the function's log
file under ``.localcloud/logs/`` and into its CloudWatch Logs stream, with Lambda's platform lines.

Lambda writes three lines of its own per invocation, START, END and REPORT (Lambda Operator Guide,
"How CloudWatch structures logs", https://docs.aws.amazon.com/lambda/latest/operatorguide/log-structure.html;
the Developer Guide's Python logging page, https://docs.aws.amazon.com/lambda/latest/dg/python-logging.html,
shows them):

    START RequestId: <id> Version: $LATEST
    END RequestId: <id>
    REPORT RequestId: <id>\tDuration: 2.01 ms\tBilled Duration: 3 ms\tMemory Size: 128 MB\t
        Max Memory Used: 75 MB\tInit Duration: 149.50 ms        (one line, tab-separated)

(``Init Duration`` on an environment's first invocation only), and for a timeout
``<ISO time> <id> Task timed out after 3.00 seconds`` before END. The worker
(``localcloud/lambdas/worker.py``) marks an invocation's start and end on the same stderr the handler
prints to, so the lines stay in order with the handler's own output; this module turns the marks into
Lambda's lines. Billed duration is the duration rounded up to the millisecond (Lambda bills in 1 ms
steps: https://aws.amazon.com/lambda/pricing/).
"""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from localcloud.lambdas.worker import PLATFORM_MARKER
from localcloud.logs.names import LAMBDA_VERSION
from localcloud.logs.shipper import LogStreamWriter, NullStream


def start_line(request_id: str) -> str:
    return f"START RequestId: {request_id} Version: {LAMBDA_VERSION}"


def end_lines(
    request_id: str, duration_ms: float, memory_mb: int, max_memory_mb: int | None, init_ms: float | None
) -> list[str]:
    fields = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {duration_ms:.2f} ms",
        f"Billed Duration: {max(1, math.ceil(duration_ms))} ms",
        f"Memory Size: {memory_mb} MB",
    ]
    if max_memory_mb is not None:
        fields.append(f"Max Memory Used: {max_memory_mb} MB")
    if init_ms is not None:
        fields.append(f"Init Duration: {init_ms:.2f} ms")
    return [f"END RequestId: {request_id}", "\t".join(fields)]


def timeout_line(request_id: str, timeout_s: float) -> str:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return f"{now} {request_id} Task timed out after {timeout_s:.2f} seconds"


class FunctionLog:
    """Pumps one worker's stderr into the function's log file and its CloudWatch stream."""

    def __init__(
        self,
        source: IO[bytes],
        log_path: Path,
        stream: LogStreamWriter | NullStream,
        memory_mb: int,
    ) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the worker
        self._source = source
        self.stream = stream
        self._memory_mb = memory_mb
        self._open_request: str | None = None  # started, not yet ended (a killed worker leaves one)
        self._ended: str | None = None  # the last request whose END line is out
        self._ended_changed = threading.Condition()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._pump, name="lambda-log", daemon=True)
        self._thread.start()

    def _emit(self, line: str) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.write(line + "\n")
                self._file.flush()
        self.stream.put(line)

    def _pump(self) -> None:
        for raw in self._source:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            at = line.find(PLATFORM_MARKER)
            if at < 0:
                self._emit(line)
                continue
            if at > 0:  # the handler's last write had no newline: its text is a line of its own
                self._emit(line[:at])
            self._platform(line[at + len(PLATFORM_MARKER) :].split(" "))

    def _platform(self, mark: list[str]) -> None:
        """``start <id>`` or ``end <id> <duration ms> <max memory MB> [<init ms>]`` from the worker."""
        if mark[0] == "start" and len(mark) >= 2:
            self._open_request = mark[1]
            self._emit(start_line(mark[1]))
        elif mark[0] == "end" and len(mark) >= 4:
            self._open_request = None
            init_ms = float(mark[4]) if len(mark) > 4 and mark[4] else None
            for line in end_lines(mark[1], float(mark[2]), self._memory_mb, int(mark[3]), init_ms):
                self._emit(line)
            with self._ended_changed:
                self._ended = mark[1]
                self._ended_changed.notify_all()

    def wait_ended(self, request_id: str, timeout_s: float = 5.0) -> bool:
        """Wait until the invocation's lines are all in the file (the worker wrote its end mark before
        it answered, so this is the pump catching up, not the handler)."""
        with self._ended_changed:
            return self._ended_changed.wait_for(lambda: self._ended == request_id, timeout=timeout_s)

    def end_killed(self, request_id: str, duration_ms: float, timeout_s: float | None) -> None:
        """The worker died mid-invocation (timeout or crash): Lambda's closing lines, after all its output."""
        self._thread.join(timeout=10)  # its stderr is at EOF once the process is gone
        if timeout_s is not None:
            self._emit(timeout_line(request_id, timeout_s))
        if self._open_request == request_id or timeout_s is not None:
            for line in end_lines(request_id, duration_ms, self._memory_mb, None, None):
                self._emit(line)
        self._open_request = None

    def close(self) -> None:
        """After the worker exited: the rest of its output, then the stream's last flush."""
        self._thread.join(timeout=10)
        with self._lock:
            self._file.close()
        self.stream.close()
