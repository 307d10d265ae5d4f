"""Ships log lines to CloudWatch Logs (the local moto) from a background thread per log stream.

    shipper = LogShipper(lambda: boto3.client("logs", endpoint_url=moto_url, ...))
    stream = shipper.open_stream("/aws/sagemaker/TrainingJobs", "job/algo-1-1733550000")
    stream.put("epoch 1 loss 0.5")     # never blocks, never raises
    stream.flush(timeout_s=10)         # before the job reports its end: readers then see every line
    stream.close()

Every ``put`` gets a timestamp (milliseconds, never earlier than the previous one, so a batch is in
the chronological order PutLogEvents requires) and goes on the stream's queue. The stream's thread
takes whatever has queued up and sends it in as few PutLogEvents calls as the documented quotas
allow (PutLogEvents API reference,
https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html): at
most 10,000 events and 1,048,576 bytes a batch, counted as each message's UTF-8 bytes plus 26; a
batch spanning at most 24 hours; each event at most 256 KB (newer revisions of the page say 1 MB:
the strict side is kept, a longer line is cut). The sequence token is ignored by AWS now (same page),
so none is sent.

Log delivery never fails or slows what it logs: a job or an invocation only ever enqueues. Transient
errors (connection refused or reset, timeouts, throttling, 5xx, a stream or group deleted under us:
recreated) are retried ``len(retry_delays_s)`` times; then the batch is dropped with a warning and
counted in ``dropped_events``, and for ``OUTAGE_HOLD_SECONDS`` every stream drops its batches unsent
(counted, no retries), so a long outage costs lines, not a job's final flush per batch. Permanent
errors (any other 4xx: a request the service will never accept) drop the batch at once, also counted
and warned about.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import botocore.exceptions
from botocore.config import Config

logger = logging.getLogger("localcloud.logs.shipper")

MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD_BYTES = 26
MAX_EVENT_BYTES = 256 * 1024  # message + overhead
MAX_BATCH_SPAN_MS = 24 * 3600 * 1000
# After a quiet spell the first line waits this long for others, so a burst goes in one call (each
# call costs the in-process moto, which shares the interpreter with the jobs' output loops, far more
# than its events do); lines that come while a call runs wait for the next one anyway.
LINGER_SECONDS = 0.2
RETRY_DELAYS_S = (0.2, 1.0, 2.0)  # a short outage is ridden out; a long one costs lines, never the job
OUTAGE_HOLD_SECONDS = 30.0  # after retries ran out: drop unsent this long, then try again
# Error codes worth another try: the service or the network, not the request (CloudWatch Logs'
# common errors, https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/CommonErrors.html).
TRANSIENT_ERROR_CODES = frozenset(
    {
        "ThrottlingException",
        "ServiceUnavailableException",
        "ServiceUnavailable",
        "InternalFailure",
        "RequestTimeout",
        "RequestTimeoutException",
        "LimitExceededException",
    }
)


# For the shipper's client: its own retries (above) instead of botocore's, short timeouts, and no
# client-side parameter validation, which for a 10,000-event batch costs more CPU than sending it
# (requests are built here: names from the services' own name rules, messages non-empty and cut).
CLIENT_CONFIG = Config(
    retries={"total_max_attempts": 1, "mode": "standard"},
    connect_timeout=2,
    read_timeout=20,
    parameter_validation=False,
)


@dataclass(frozen=True)
class LogEvent:
    timestamp: int  # ms since the epoch
    message: str

    @property
    def size(self) -> int:
        """The event's share of a batch's byte quota."""
        return len(self.message.encode("utf-8")) + EVENT_OVERHEAD_BYTES


def fit_message(message: str) -> str:
    """The message cut to the largest event PutLogEvents accepts (whole UTF-8 characters kept)."""
    limit = MAX_EVENT_BYTES - EVENT_OVERHEAD_BYTES
    data = message.encode("utf-8")
    if len(data) <= limit:
        return message
    return data[:limit].decode("utf-8", errors="ignore")


def batches(events: Iterable[LogEvent]) -> Iterator[list[LogEvent]]:
    """Consecutive runs of `events`, each within PutLogEvents' count, byte and time-span quotas."""
    batch: list[LogEvent] = []
    size = 0
    for event in events:
        full = (
            len(batch) == MAX_BATCH_EVENTS
            or size + event.size > MAX_BATCH_BYTES
            or (batch and event.timestamp - batch[0].timestamp > MAX_BATCH_SPAN_MS)
        )
        if batch and full:
            yield batch
            batch, size = [], 0
        batch.append(event)
        size += event.size
    if batch:
        yield batch


def is_transient(error: Exception) -> bool:
    """Whether a failed call may work when repeated (see the module docstring for the split)."""
    if isinstance(error, botocore.exceptions.ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return code in TRANSIENT_ERROR_CODES or code == "ResourceNotFoundException" or status >= 500
    # Connection refused/reset, connect and read timeouts: the network or the service. Any other
    # BotoCoreError (ParamValidationError: a request the model refuses) is the request's fault.
    transient = (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError, OSError)
    return isinstance(error, transient)


def rejected_count(info: dict[str, int], size: int) -> int:
    """Events of a batch the service accepted the call for but not the events (PutLogEvents'
    ``rejectedLogEventsInfo``: too new from an index on, too old or expired up to one)."""
    rejected: set[int] = set()
    if "tooNewLogEventStartIndex" in info:
        rejected.update(range(info["tooNewLogEventStartIndex"], size))
    for key in ("tooOldLogEventEndIndex", "expiredLogEventEndIndex"):
        if key in info:
            rejected.update(range(0, info[key] + 1))
    return len(rejected)


class LogShipper:
    """Opens log streams; counts what was delivered and what was dropped, across them all."""

    def __init__(
        self,
        client_factory: Callable[[], Any],
        *,
        retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client_factory = client_factory
        self._client: Any = None
        self.retry_delays_s = retry_delays_s
        self.clock = clock
        self._lock = threading.Lock()
        self._streams: list[LogStreamWriter] = []
        self._groups: set[str] = set()
        self.delivered_events = 0
        self.dropped_events = 0
        self.put_calls = 0
        self._outage_until = 0.0  # monotonic time until which lines are dropped unsent

    def open_stream(self, group: str, stream: str) -> LogStreamWriter:
        writer = LogStreamWriter(self, group, stream)
        with self._lock:
            self._streams = [s for s in self._streams if not s.closed]
            self._streams.append(writer)
        return writer

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every line put so far, on every open stream, was delivered or dropped (readers
        such as tests then see all of them; Lambda streams are otherwise flushed as they go)."""
        with self._lock:
            streams = [s for s in self._streams if not s.closed]
        deadline = time.monotonic() + timeout_s
        return all(s.flush(max(0.0, deadline - time.monotonic())) for s in streams)

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush and stop every stream still open (the cloud is stopping)."""
        with self._lock:
            streams, self._streams = self._streams, []
        for writer in streams:
            writer.close(timeout_s)
        if self.dropped_events:
            logger.warning("CloudWatch Logs: %d log events were dropped in all", self.dropped_events)

    # -- used by the writers' threads ---------------------------------------------------------------
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._client_factory()  # boto3 clients are thread-safe
            return self._client

    def ensure_group(self, group: str) -> None:
        with self._lock:
            if group in self._groups:
                return
        try:
            self.client().create_log_group(logGroupName=group)
        except botocore.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ResourceAlreadyExistsException":
                raise
        with self._lock:
            self._groups.add(group)

    def forget_group(self, group: str) -> None:
        with self._lock:
            self._groups.discard(group)

    # An outage the retries did not ride out is likely to last: for a while, every stream drops its
    # lines at once instead of spending its retries (and a job's final flush) on each batch.
    def outage_started(self) -> None:
        with self._lock:
            self._outage_until = time.monotonic() + OUTAGE_HOLD_SECONDS

    def outage_ongoing(self) -> bool:
        with self._lock:
            return time.monotonic() < self._outage_until

    def outage_over(self) -> None:
        with self._lock:
            self._outage_until = 0.0

    def count(self, delivered: int = 0, dropped: int = 0, calls: int = 0) -> None:
        with self._lock:
            self.delivered_events += delivered
            self.dropped_events += dropped
            self.put_calls += calls


_CLOSE = object()


class LogStreamWriter:
    """One log stream: a queue and the thread that empties it into PutLogEvents calls."""

    def __init__(self, shipper: LogShipper, group: str, stream: str) -> None:
        self.shipper = shipper
        self.group = group
        self.stream = stream
        self.closed = False
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._last_timestamp = 0
        self._stamp_lock = threading.Lock()
        self._progress = threading.Condition()
        self._queued = 0
        self._handled = 0
        self._created = False
        self._thread = threading.Thread(target=self._run, name=f"logs:{group}:{stream}", daemon=True)
        self._thread.start()

    def put(self, message: str) -> None:
        """Queue one line (its timestamp is now). Never blocks on the service, never raises.

        A blank line is not sent: PutLogEvents refuses an empty message (InputLogEvent.message has a
        minimum length of 1 in the API model), and it carries nothing to read."""
        if self.closed or not message.strip():
            return
        # Kept to a lock, a clock read and a queue put: it runs in the job's or the function's own
        # output loop (the cutting and batching happen on the stream's thread).
        with self._stamp_lock:
            timestamp = max(int(self.shipper.clock() * 1000), self._last_timestamp)
            self._last_timestamp = timestamp
            self._queued += 1
            self._queue.put((timestamp, message))

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every line queued so far was delivered or dropped; False if time ran out."""
        with self._stamp_lock:
            target = self._queued
        with self._progress:
            return self._progress.wait_for(lambda: self._handled >= target, timeout=timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        if self.closed:
            return
        self.closed = True
        self._queue.put(_CLOSE)
        self._thread.join(timeout=timeout_s)

    # -- the stream's thread -----------------------------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            pending: list[LogEvent] = []
            item = self._queue.get()
            if item is not _CLOSE:
                time.sleep(LINGER_SECONDS)  # let a burst gather into one call
            while True:
                if item is _CLOSE:
                    stopping = True
                    break
                timestamp, message = item
                pending.append(LogEvent(timestamp, fit_message(message)))
                try:
                    item = self._queue.get_nowait()  # whatever queued while the last call ran
                except queue.Empty:
                    break
            for batch in batches(pending):
                self._deliver(batch)
                with self._progress:
                    self._handled += len(batch)
                    self._progress.notify_all()

    def _deliver(self, batch: list[LogEvent]) -> None:
        shipper = self.shipper
        if shipper.outage_ongoing():  # retries just ran out: drop at once until the next probe
            shipper.count(dropped=len(batch))
            return
        delays = (0.0, *shipper.retry_delays_s)
        error: Exception | None = None
        for delay in delays:
            if delay:
                time.sleep(delay)
            try:
                self._create_stream()
                response = shipper.client().put_log_events(
                    logGroupName=self.group,
                    logStreamName=self.stream,
                    logEvents=[{"timestamp": e.timestamp, "message": e.message} for e in batch],
                )
                rejected = rejected_count(response.get("rejectedLogEventsInfo") or {}, len(batch))
                shipper.count(delivered=len(batch) - rejected, dropped=rejected, calls=1)
                shipper.outage_over()
                if rejected:  # permanent: those timestamps will never be accepted
                    logger.warning(
                        "CloudWatch Logs: %d log events for %s %s rejected by the service: %s",
                        rejected,
                        self.group,
                        self.stream,
                        response["rejectedLogEventsInfo"],
                    )
                return
            except Exception as caught:  # classified below: nothing may escape into the job
                error = caught
                if not is_transient(caught):
                    break
                code = getattr(caught, "response", {}).get("Error", {}).get("Code")
                if code == "ResourceNotFoundException":  # deleted under us: make it again
                    self._created = False
                    shipper.forget_group(self.group)
        shipper.count(dropped=len(batch))
        kind = "permanent"
        if error and is_transient(error):
            kind = f"transient, retries used up; dropping all lines for {OUTAGE_HOLD_SECONDS:.0f} s"
            shipper.outage_started()
        logger.warning(
            "CloudWatch Logs: dropped %d log events for %s %s (%s): %s",
            len(batch),
            self.group,
            self.stream,
            kind,
            error,
        )

    def _create_stream(self) -> None:
        if self._created:
            return
        self.shipper.ensure_group(self.group)
        try:
            self.shipper.client().create_log_stream(logGroupName=self.group, logStreamName=self.stream)
        except botocore.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ResourceAlreadyExistsException":
                raise
        self._created = True


class NullStream:
    """A stream for where no shipper is configured (an emulator started without the local cloud)."""

    closed = False

    def put(self, message: str) -> None:
        pass

    def flush(self, timeout_s: float = 10.0) -> bool:
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        pass


def open_stream(shipper: LogShipper | None, group: str, stream: str) -> LogStreamWriter | NullStream:
    return shipper.open_stream(group, stream) if shipper else NullStream()
