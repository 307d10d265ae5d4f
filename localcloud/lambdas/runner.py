"""Runs Lambda handlers locally with Lambda's invocation semantics.

Each function gets warm worker processes (``localcloud/lambdas/worker.py`` in this interpreter) with
exactly the environment the template gives it, so modules that read env at import time behave as
in Lambda and functions never share state. Asynchronous invocations (what S3 and EventBridge use)
are retried twice on error, with short delays instead of AWS's one and two minutes, then go to the
function's on-failure destination (and dead-letter queue) with the record shapes AWS uses. A
handler that runs past its Timeout is killed and counts as a failed attempt.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from localcloud.faults.spec import FaultInjector
from localcloud.logs.lambda_logs import FunctionLog
from localcloud.logs.names import lambda_group, lambda_stream
from localcloud.logs.shipper import LogShipper, open_stream

WORKER_SCRIPT = Path(__file__).with_name("worker.py")


@dataclass(frozen=True)
class Destination:
    """An async-invocation destination or dead-letter target, by ARN (sqs, sns or lambda)."""

    arn: str

    @property
    def service(self) -> str:
        return self.arn.split(":")[2]


@dataclass
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    handler: str
    code_dir: Path
    environment: dict[str, str]
    timeout_s: float = 3.0
    memory_mb: int = 128
    extra_sys_path: list[Path] = field(default_factory=list)
    max_retries: int = 2
    on_failure: Destination | None = None
    on_success: Destination | None = None
    dead_letter: Destination | None = None
    reserved_concurrency: int | None = None  # ReservedConcurrentExecutions: at most this many at once


@dataclass
class InvocationRecord:
    """One attempt of one invocation, for logs and the demo's progress output."""

    function: str
    request_id: str
    attempt: int
    summary: str
    started_at: float
    duration_s: float
    ok: bool
    payload: Any

    @property
    def error(self) -> str | None:
        if self.ok:
            return None
        payload = self.payload if isinstance(self.payload, dict) else {}
        return f"{payload.get('errorType', 'Error')}: {payload.get('errorMessage', '')}"


class InvocationError(RuntimeError):
    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(f"{payload.get('errorType')}: {payload.get('errorMessage')}")
        self.payload = payload


def summarize_event(event: Any) -> str:
    """A one-line description of an S3 or EventBridge event for logs."""
    if isinstance(event, dict) and isinstance(event.get("Records"), list) and event["Records"]:
        record = event["Records"][0]
        if "s3" in record:
            return (
                f"{record.get('eventName')} s3://{record['s3']['bucket']['name']}/"
                f"{record['s3']['object']['key']}"
            )
        return f"{len(event['Records'])} record(s) from {record.get('eventSource')}"
    if isinstance(event, dict) and "detail-type" in event:
        detail = event.get("detail") or {}
        name = next((str(v) for k, v in detail.items() if k.endswith("Name") and isinstance(v, str)), "")
        status = next((str(v) for k, v in detail.items() if k.endswith("Status") and isinstance(v, str)), "")
        return f"{event['detail-type']} {name} {status}".strip()
    return json.dumps(event, default=str)[:120]


class _Worker:
    def __init__(self, spec: FunctionSpec, log_path: Path, log_shipper: LogShipper | None = None) -> None:
        # One execution environment, one log stream (localcloud.logs.names), named in its environment.
        stream = lambda_stream()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-P",  # do not put localcloud/ on the handler's sys.path
                str(WORKER_SCRIPT),
                spec.handler,
                str(spec.code_dir),
                *[str(p) for p in spec.extra_sys_path],
            ],
            env={**spec.environment, "AWS_LAMBDA_LOG_STREAM_NAME": stream},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=spec.code_dir,
        )
        assert self.process.stderr is not None
        cloudwatch = open_stream(log_shipper, lambda_group(spec.name), stream)
        self.log = FunctionLog(self.process.stderr, log_path, cloudwatch, spec.memory_mb)
        self.calls = 0  # invocations sent to this sandbox; 0: the next one also waits for its init

    def call(self, event: Any, request_id: str, timeout_s: float) -> tuple[bool, Any]:
        started = time.time()
        deadline = started + timeout_s
        request = {"event": event, "request_id": request_id, "deadline_ms": int(deadline * 1000)}
        assert self.process.stdin is not None and self.process.stdout is not None
        self.calls += 1
        try:
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            self.process.stdin.flush()
        except BrokenPipeError:
            return False, self._exit_error(request_id, started)
        ready, _, _ = select.select([self.process.stdout], [], [], max(0.0, deadline - time.time()))
        if not ready:
            self.process.kill()
            self.process.wait()
            self.log.end_killed(request_id, timeout_s * 1000, timeout_s)
            self.kill()
            return False, {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"Task timed out after {timeout_s:.2f} seconds",
            }
        line = self.process.stdout.readline()
        if not line:
            return False, self._exit_error(request_id, started)
        reply = json.loads(line)
        self.log.wait_ended(request_id)  # its output is in the log file when the invocation returns
        return bool(reply["ok"]), reply["payload"]

    def _exit_error(self, request_id: str, started: float) -> dict[str, Any]:
        code = self.process.wait()
        self.log.end_killed(request_id, (time.time() - started) * 1000, None)
        return {"errorType": "Runtime.ExitError", "errorMessage": f"Runtime exited with status {code}"}

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.process.kill()
            self.process.wait()
        self.log.close()


class LambdaRunner:
    """Invokes the template's functions synchronously or asynchronously."""

    def __init__(
        self,
        functions: Mapping[str, FunctionSpec],
        *,
        log_dir: Path,
        send_to_destination: Callable[[Destination, dict[str, Any]], None],
        retry_delays_s: tuple[float, ...] = (1.0, 2.0),
        max_concurrency: int = 4,
        on_record: Callable[[InvocationRecord], None] | None = None,
        faults: FaultInjector | None = None,
        log_shipper: LogShipper | None = None,
    ) -> None:
        self.functions = dict(functions)
        self._log_shipper = log_shipper  # CloudWatch Logs: /aws/lambda/<name>, one stream per worker
        self._faults = faults
        self.log_dir = log_dir
        self._send_to_destination = send_to_destination
        self._retry_delays_s = retry_delays_s
        self._on_record = on_record
        self._executor = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="lambda")
        self._idle: dict[str, list[_Worker]] = {name: [] for name in self.functions}
        # Reserved concurrency caps a function's concurrent invocations: an invocation over the cap
        # waits for a slot (AWS throttles it; an async event then waits in Lambda's queue and retries).
        self._slots = {
            spec.name: threading.BoundedSemaphore(spec.reserved_concurrency)
            for spec in self.functions.values()
            if spec.reserved_concurrency is not None
        }
        self._all_workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._pending = 0
        self._pending_changed = threading.Condition(self._lock)
        self.records: list[InvocationRecord] = []
        self.failed_async: list[dict[str, Any]] = []  # on-failure records, also kept for callers
        self._closed = False

    def function(self, name_or_logical_id: str) -> FunctionSpec:
        if name_or_logical_id in self.functions:
            return self.functions[name_or_logical_id]
        for spec in self.functions.values():
            if name_or_logical_id in (spec.logical_id, spec.arn):
                return spec
        raise KeyError(f"no function {name_or_logical_id!r} in the template")

    # -- invocation --------------------------------------------------------------------------------
    def invoke(self, function: str, event: Any) -> Any:
        """RequestResponse: one attempt, raises InvocationError with the handler's error payload."""
        ok, payload = self._attempt(self.function(function), event, str(uuid.uuid4()), attempt=1)
        if not ok:
            raise InvocationError(payload)
        return payload

    def invoke_async(self, function: str, event: Any) -> Future[bool]:
        """Event invocation: queued, retried, then sent to destinations. Resolves to success."""
        spec = self.function(function)
        with self._lock:
            if self._closed:
                raise RuntimeError("the Lambda runner is stopped")
            self._pending += 1
        return self._executor.submit(self._run_async, spec, event)

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no async invocation is queued or running."""
        with self._pending_changed:
            return self._pending_changed.wait_for(lambda: self._pending == 0, timeout=timeout_s)

    @property
    def pending(self) -> int:
        return self._pending

    def _run_async(self, spec: FunctionSpec, event: Any) -> bool:
        request_id = str(uuid.uuid4())
        try:
            attempts = 1 + spec.max_retries
            payload: Any = None
            for attempt in range(1, attempts + 1):
                ok, payload = self._attempt(spec, event, request_id, attempt)
                if ok:
                    if spec.on_success:
                        self._deliver(
                            spec.on_success,
                            self._destination_record(spec, event, request_id, attempt, True, payload),
                        )
                    return True
                if attempt < attempts and not self._closed:
                    time.sleep(self._retry_delays_s[min(attempt - 1, len(self._retry_delays_s) - 1)])
                elif self._closed:
                    break
            record = self._destination_record(spec, event, request_id, attempt, False, payload)
            self.failed_async.append(record)
            if spec.on_failure:
                self._deliver(spec.on_failure, record)
            if spec.dead_letter:
                self._deliver(spec.dead_letter, event)  # a DLQ gets the event itself
            return False
        finally:
            with self._pending_changed:
                self._pending -= 1
                self._pending_changed.notify_all()

    def _deliver(self, destination: Destination, message: Any) -> None:
        try:
            self._send_to_destination(destination, message)
        except Exception as error:  # AWS drops a record it cannot deliver; we at least say so
            print(f"[localcloud] could not deliver to {destination.arn}: {error}", file=sys.stderr)

    @staticmethod
    def _destination_record(
        spec: FunctionSpec, event: Any, request_id: str, attempts: int, ok: bool, payload: Any
    ) -> dict[str, Any]:
        """The record Lambda sends to an async invocation destination."""
        response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if not ok:
            response_context["functionError"] = "Unhandled"
        return {
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "requestContext": {
                "requestId": request_id,
                "functionArn": f"{spec.arn}:$LATEST",
                "condition": "Success" if ok else "RetriesExhausted",
                "approximateInvokeCount": attempts,
            },
            "requestPayload": event,
            "responseContext": response_context,
            "responsePayload": payload,
        }

    def _attempt(self, spec: FunctionSpec, event: Any, request_id: str, attempt: int) -> tuple[bool, Any]:
        slot = self._slots.get(spec.name)
        if slot is not None:
            slot.acquire()
        try:
            worker = self._checkout(spec)
            started = time.time()
            finished = threading.Event()
            timer = self._arm_kill(spec, worker, finished)
            try:
                ok, payload = worker.call(event, request_id, spec.timeout_s)
            finally:
                finished.set()
                if timer:
                    timer.cancel()
                self._checkin(spec, worker)
        finally:
            if slot is not None:
                slot.release()
        record = InvocationRecord(
            function=spec.name,
            request_id=request_id,
            attempt=attempt,
            summary=summarize_event(event),
            started_at=started,
            duration_s=time.time() - started,
            ok=ok,
            payload=payload,
        )
        self.records.append(record)
        with open(self.log_dir / "invocations.jsonl", "a", encoding="utf-8") as log:
            log.write(json.dumps(record.__dict__, default=str) + "\n")
        if self._on_record:
            self._on_record(record)
        return ok, payload

    def _arm_kill(
        self, spec: FunctionSpec, worker: _Worker, finished: threading.Event
    ) -> threading.Timer | None:
        """localcloud.faults.spec: SIGKILL the sandbox mid-invocation, as an out-of-memory kill does."""
        # Only a warm sandbox: in a cold one the delay would run out during init, before any work.
        warm = worker.calls > 0
        kill = self._faults.lambda_kill((spec.logical_id, spec.name), warm) if self._faults else None
        if kill is None or self._faults is None:
            return None
        faults = self._faults

        def fire() -> None:
            if not finished.is_set() and faults.claim_kill(kill):
                worker.process.kill()

        timer = threading.Timer(kill.delay_s, fire)
        timer.daemon = True
        timer.start()
        return timer

    def _checkout(self, spec: FunctionSpec) -> _Worker:
        with self._lock:
            idle = self._idle[spec.name]
            while idle:
                worker = idle.pop()
                if worker.alive:
                    return worker
        worker = _Worker(spec, self.log_dir / f"{spec.name}.log", self._log_shipper)
        with self._lock:
            self._all_workers.append(worker)
        return worker

    def _checkin(self, spec: FunctionSpec, worker: _Worker) -> None:
        with self._lock:
            if worker.alive and not self._closed:
                self._idle[spec.name].append(worker)
            else:
                worker.kill()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = list(self._all_workers)
        for worker in workers:
            worker.kill()
        self._executor.shutdown(wait=False, cancel_futures=True)


def base_lambda_environment(
    spec_name: str, arn: str, memory_mb: int, timeout_s: float, region: str
) -> dict[str, str]:
    """The variables the Lambda runtime itself sets, plus a minimal process environment."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONUNBUFFERED": "1",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_NAME": spec_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(int(timeout_s)),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local",
        "LOCALCLOUD_FUNCTION_ARN": arn,
    }
