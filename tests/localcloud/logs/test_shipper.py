"""The CloudWatch Logs shipper: PutLogEvents' documented quotas, order, and outages that cost lines,
never the caller (localcloud/logs/shipper.py).

The quotas are written here as the PutLogEvents API reference states them
(https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html), not
read from the module: 10,000 events and 1,048,576 bytes a batch, each event's UTF-8 message plus 26
bytes, a batch spanning at most 24 hours, an event at most 256 KB.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from localcloud.logs.shipper import CLIENT_CONFIG, LogEvent, LogShipper, batches, fit_message
from localcloud.shared import free_port
from tests.support.sagemaker import client, local_s3

GROUP = "/aws/sagemaker/TrainingJobs"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with local_s3() as url:  # moto's server answers CloudWatch Logs on the same port
        yield url


def read_stream(logs: Any, group: str, stream: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    token = None
    while True:
        kwargs: dict[str, str] = {"nextToken": token} if token else {}
        page = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True, **kwargs)
        events += page["events"]
        if page["nextForwardToken"] == token or not page["events"]:
            return events
        token = page["nextForwardToken"]


def test_a_batch_holds_at_most_10000_events() -> None:
    events = [LogEvent(1_000, "x") for _ in range(20_001)]
    assert [len(batch) for batch in batches(events)] == [10_000, 10_000, 1]


def test_a_batch_holds_at_most_1048576_bytes_counting_26_per_event() -> None:
    # 262,118 message bytes + 26 = 262,144 per event: exactly four fill 1,048,576 bytes.
    big = LogEvent(1_000, "a" * 262_118)
    assert [len(b) for b in batches([big] * 5)] == [4, 1]
    # One byte more in the fourth and it no longer fits beside three.
    assert [len(b) for b in batches([big, big, big, LogEvent(1_000, "a" * 262_119)])] == [3, 1]
    # The 26 bytes count: 40 events of 26,189 bytes are 1,047,560 message bytes but 1,048,600 in all.
    assert [len(b) for b in batches([LogEvent(1_000, "b" * 26_189)] * 40)] == [39, 1]


def test_a_batch_spans_at_most_24_hours() -> None:
    day_ms = 24 * 3600 * 1000
    events = [LogEvent(0, "a"), LogEvent(day_ms, "b"), LogEvent(day_ms + 1, "c")]
    assert [[e.message for e in b] for b in batches(events)] == [["a", "b"], ["c"]]


def test_a_line_over_256_kb_is_cut_to_whole_characters() -> None:
    message = "é" * 200_000  # 400,000 UTF-8 bytes
    cut = fit_message(message)
    assert len(cut.encode("utf-8")) + 26 <= 262_144
    assert len(cut.encode("utf-8")) > 262_144 - 26 - 2  # nothing more than the last half character lost
    assert set(cut) == {"é"}
    assert fit_message("short") == "short"


def test_lines_arrive_in_order_in_few_calls_with_ordered_timestamps(moto_url: str) -> None:
    now = time.time()  # CloudWatch Logs refuses events over 14 days old: a clock near now, that steps back
    ticks = iter([now, now - 1, now + 1] + [now + 2] * 5_000)
    shipper = LogShipper(lambda: client("logs", moto_url), clock=lambda: next(ticks))
    stream = shipper.open_stream(GROUP, "ordered/algo-1-100")
    lines = [f"line {i}" for i in range(2_500)]
    for line in lines:
        stream.put(line)
    assert stream.flush(timeout_s=30)
    stream.close()

    events = read_stream(client("logs", moto_url), GROUP, "ordered/algo-1-100")
    assert [e["message"] for e in events] == lines
    stamps = [e["timestamp"] for e in events]
    first = int(now * 1000)
    assert stamps[:3] == [first, first, int((now + 1) * 1000)]  # the step back is held at the last time
    assert stamps == sorted(stamps)
    assert shipper.delivered_events == 2_500 and shipper.dropped_events == 0
    assert shipper.put_calls < 2_500 / 10  # batched: lines queue up while a call is in flight


def test_a_deleted_group_is_made_again_and_nothing_is_lost(moto_url: str) -> None:
    logs = client("logs", moto_url)
    shipper = LogShipper(lambda: client("logs", moto_url), retry_delays_s=(0.01,))
    stream = shipper.open_stream("/aws/lambda/deleted", "2026/12/07/[$LATEST]abc")
    stream.put("before")
    assert stream.flush()
    logs.delete_log_group(logGroupName="/aws/lambda/deleted")
    stream.put("after")
    assert stream.flush()
    stream.close()
    assert [e["message"] for e in read_stream(logs, "/aws/lambda/deleted", "2026/12/07/[$LATEST]abc")] == [
        "after"
    ]
    assert shipper.dropped_events == 0


def test_an_outage_drops_lines_with_a_counted_warning_and_never_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    shipper = LogShipper(lambda: client("logs", closed), retry_delays_s=(0.01, 0.01))
    stream = shipper.open_stream(GROUP, "down/algo-1-1")
    with caplog.at_level(logging.WARNING, logger="localcloud.logs.shipper"):
        for i in range(30):
            stream.put(f"line {i}")  # returns at once whatever the service does
        assert stream.flush(timeout_s=60)
        shipper.close()
    assert shipper.dropped_events == 30 and shipper.delivered_events == 0
    assert "transient, retries used up" in caplog.text
    assert "30 log events were dropped in all" in caplog.text
    stream.put("after close")  # still harmless


def test_events_the_service_rejects_as_too_old_are_counted_as_dropped(moto_url: str) -> None:
    # Over 14 days old: PutLogEvents accepts the call and names the events it rejected.
    shipper = LogShipper(lambda: client("logs", moto_url), clock=lambda: time.time() - 15 * 86_400)
    stream = shipper.open_stream(GROUP, "old/algo-1-1")
    for i in range(3):
        stream.put(f"old {i}")
    assert stream.flush()
    stream.close()
    assert (shipper.delivered_events, shipper.dropped_events) == (0, 3)


def test_a_request_the_api_refuses_is_dropped_at_once_not_retried(
    moto_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A group name over 512 characters fails botocore's parameter validation (the API model's
    # LogGroupName: 1 to 512): permanent, no retries (the delay would make the flush take a minute).
    shipper = LogShipper(lambda: client("logs", moto_url), retry_delays_s=(60.0,))
    stream = shipper.open_stream("/" + "g" * 512, "algo-1")
    stream.put("never sent")
    with caplog.at_level(logging.WARNING, logger="localcloud.logs.shipper"):
        assert stream.flush(timeout_s=10)
    stream.close()
    assert shipper.dropped_events == 1
    assert "(permanent)" in caplog.text


def test_blank_lines_are_not_sent(moto_url: str) -> None:
    shipper = LogShipper(lambda: client("logs", moto_url))
    stream = shipper.open_stream(GROUP, "blank/algo-1-1")
    for line in ("a", "", "   ", "b"):
        stream.put(line)
    assert stream.flush()
    stream.close()
    messages = [e["message"] for e in read_stream(client("logs", moto_url), GROUP, "blank/algo-1-1")]
    assert messages == ["a", "b"]


def test_after_an_outage_used_up_the_retries_lines_are_dropped_without_new_attempts() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    sends: list[str] = []

    def counted_client() -> Any:  # the local cloud's shipper client: one HTTP attempt per call
        logs = boto3.client(
            "logs",
            endpoint_url=closed,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=CLIENT_CONFIG,
        )
        logs.meta.events.register("before-send.logs", lambda request, **_: sends.append(request.url))
        return logs

    shipper = LogShipper(counted_client, retry_delays_s=(0.01,))
    first = shipper.open_stream(GROUP, "outage/algo-1-1")
    first.put("tried twice")
    assert first.flush()
    attempts = len(sends)
    assert attempts == 2  # CreateLogGroup, first try and one retry (the group comes first)
    second = shipper.open_stream(GROUP, "outage/algo-1-2")
    second.put("dropped unsent")
    assert second.flush()
    assert len(sends) == attempts and shipper.dropped_events == 2
    shipper.close()
