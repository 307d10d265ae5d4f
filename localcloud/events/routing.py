"""Routing: S3 notifications, EventBridge events and Lambda destinations to the template's functions.

S3 notifications are real moto bucket notifications: every S3 event of a function becomes a
QueueConfiguration (same events and prefix/suffix filters, Id = ``<Function>.<Event>``) that sends to
one local queue; a poller thread turns each record into an asynchronous invocation of that function.
So objects written by handlers notify like any other upload, and keys arrive URL-encoded as in AWS.
EventBridge events (the SageMaker emulator's job state changes) are matched against each function's
EventBridgeRule pattern and invoke it asynchronously as well. Scheduled rules fire on one local period
(``schedule_period_s``, seconds where AWS counts minutes: docs/local.md's fidelity table) with the
"Scheduled Event" AWS sends.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from localcloud.events.patterns import matches_event_pattern
from localcloud.faults.spec import FaultInjector
from localcloud.lambdas.runner import Destination, LambdaRunner
from localcloud.shared import ACCOUNT_ID
from localcloud.stack.resources import (
    NOTIFICATIONS_QUEUE,
    S3_EVENTS_QUEUE,
    ClientFactory,
    EventBridgeSubscription,
    S3Subscription,
    ScheduleSubscription,
)


class EventRouter:
    """Delivers S3 notifications and EventBridge events to functions, and results to destinations."""

    def __init__(
        self,
        region: str,
        client: ClientFactory,
        runner: Callable[[], LambdaRunner | None],
        stopping: threading.Event,
    ) -> None:
        self.region = region
        self._client = client
        self._runner = runner  # looked up per event: the runner exists only once the cloud has started
        self._stopping = stopping
        self.s3_subscriptions: list[S3Subscription] = []
        self.eventbridge_subscriptions: list[EventBridgeSubscription] = []
        self.schedule_subscriptions: list[ScheduleSubscription] = []
        self.poller_errors: list[str] = []
        self.faults: FaultInjector | None = None  # localcloud.faults.spec: duplicate deliveries

    # -- S3 notifications --------------------------------------------------------------------------
    def configure_s3_notifications(self) -> None:
        s3 = self._client("s3")
        queue_arn = f"arn:aws:sqs:{self.region}:{ACCOUNT_ID}:{S3_EVENTS_QUEUE}"
        by_bucket: dict[str, list[S3Subscription]] = {}
        for sub in self.s3_subscriptions:
            by_bucket.setdefault(sub.bucket, []).append(sub)
        for bucket, subs in by_bucket.items():
            configurations = []
            for sub in subs:
                configuration: dict[str, Any] = {
                    "Id": sub.configuration_id,
                    "QueueArn": queue_arn,
                    "Events": sub.events,
                }
                if sub.filter_rules:
                    configuration["Filter"] = {"Key": {"FilterRules": sub.filter_rules}}
                configurations.append(configuration)
            s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"QueueConfigurations": configurations}
            )

    def poll_s3_events(self) -> None:
        """Thread body: turn each queued S3 record into an asynchronous invocation, until stopping."""
        sqs = self._client("sqs")
        queue_url = sqs.get_queue_url(QueueName=S3_EVENTS_QUEUE)["QueueUrl"]
        by_configuration = {sub.configuration_id: sub for sub in self.s3_subscriptions}
        while not self._stopping.is_set():
            try:
                reply = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            except Exception as error:  # the server is going down, or a transient hiccup
                if not self._stopping.is_set():
                    # Said at once and kept for the demo's failure summary: a poller that cannot
                    # read its queue means uploads that trigger nothing.
                    print(f"[localcloud] S3 event poller: {type(error).__name__}: {error}", file=sys.stderr)
                    self.poller_errors.append(f"{type(error).__name__}: {error}")
                    time.sleep(0.5)
                continue
            for message in reply.get("Messages", []):
                body = json.loads(message["Body"])
                for record in body.get("Records", []):  # s3:TestEvent messages have no Records
                    sub = by_configuration.get(record.get("s3", {}).get("configurationId"))
                    runner = self._runner()
                    if sub is None or runner is None:
                        continue
                    delivery = {"Records": [complete_s3_record(record)]}
                    runner.invoke_async(sub.function, delivery)
                    if self.faults and self.faults.duplicate("s3"):  # the same record, twice
                        runner.invoke_async(sub.function, delivery)
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    def wait_s3_events_delivered(self, timeout_s: float) -> bool:
        """Wait until every S3 notification sent so far has been turned into an invocation and every
        invocation has finished. moto sends a notification inside the S3 request itself, so after an
        upload returns this answers "what did that upload trigger" without guessing a delay."""
        sqs = self._client("sqs")
        queue_url = sqs.get_queue_url(QueueName=S3_EVENTS_QUEUE)["QueueUrl"]
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]

        def queue_empty() -> bool:
            attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
            return not any(int(attributes.get(name, 0)) for name in names)

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            # The poller invokes (pending + 1) before it deletes a message, so "queue empty, then
            # runner idle, then queue still empty" cannot miss an event, including events sent by
            # objects the invocations themselves wrote.
            runner = self._runner()
            if (
                queue_empty()
                and (runner is None or runner.wait_idle(max(0.0, deadline - time.monotonic())))
                and queue_empty()
            ):
                return True
            time.sleep(0.05)
        return False

    def read_notifications(self) -> list[dict[str, str]]:
        """SNS messages published since the last call: ``{"topic", "subject", "message"}``."""
        sqs = self._client("sqs")
        url = sqs.get_queue_url(QueueName=NOTIFICATIONS_QUEUE)["QueueUrl"]
        found: list[dict[str, str]] = []
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                envelope = json.loads(message["Body"])
                found.append(
                    {
                        "topic": envelope.get("TopicArn", ""),
                        "subject": envelope.get("Subject") or "",
                        "message": envelope.get("Message", ""),
                    }
                )
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    # -- EventBridge -------------------------------------------------------------------------------
    def on_sagemaker_event(self, event: dict[str, Any]) -> None:
        self.put_event(event)

    def put_event(self, event: Mapping[str, Any]) -> list[str]:
        """Route one EventBridge event to every function whose rule pattern matches it."""
        full = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "account": ACCOUNT_ID,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [],
            **event,
        }
        targets = [
            sub.function for sub in self.eventbridge_subscriptions if matches_event_pattern(sub.pattern, full)
        ]
        runner = self._runner()
        if runner is not None and not self._stopping.is_set():  # shutting down: jobs report Stopped
            copies = 2 if self.faults and targets and self.faults.duplicate("eventbridge") else 1
            for _ in range(copies):  # a duplicate is the same event, id included
                for function in targets:
                    runner.invoke_async(function, full)
        return targets

    def run_schedules(self, period_s: float) -> None:
        """Thread body: every ``period_s``, the event of each scheduled rule to its function, until
        stopping. The shape is AWS's "Scheduled Event" (detail empty, the rule in resources):
        https://docs.aws.amazon.com/eventbridge/latest/ref/event-reference.html#event-reference-scheduled"""
        while not self._stopping.wait(period_s):
            runner = self._runner()
            if runner is None:
                continue
            for schedule in self.schedule_subscriptions:
                event = {
                    "version": "0",
                    "id": str(uuid.uuid4()),
                    "detail-type": "Scheduled Event",
                    "source": "aws.events",
                    "account": ACCOUNT_ID,
                    "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "region": self.region,
                    "resources": [schedule.rule_arn],
                    "detail": {},
                }
                runner.invoke_async(schedule.function, event)

    # -- destinations ------------------------------------------------------------------------------
    def send_to_destination(self, destination: Destination, message: Any) -> None:
        body = json.dumps(message, default=str)
        runner = self._runner()
        if destination.service == "sqs":
            sqs = self._client("sqs")
            url = sqs.get_queue_url(QueueName=destination.arn.split(":")[-1])["QueueUrl"]
            sqs.send_message(QueueUrl=url, MessageBody=body)
        elif destination.service == "sns":
            self._client("sns").publish(TopicArn=destination.arn, Message=body)
        elif destination.service == "lambda" and runner is not None:
            runner.invoke_async(destination.arn, message)
        else:
            raise ValueError(f"destination {destination.arn} is not emulated")


def complete_s3_record(record: dict[str, Any]) -> dict[str, Any]:
    """Add the fields AWS puts in an S3 event record that moto leaves out."""
    record = json.loads(json.dumps(record))
    # moto encodes "/" as %2F; S3 keeps slashes and encodes the rest like a form value.
    key = unquote_plus(record["s3"]["object"]["key"])
    record["s3"]["object"]["key"] = quote_plus(key, safe="/")
    request_id = uuid.uuid4().hex[:16].upper()
    record.setdefault("userIdentity", {"principalId": "AWS:LOCALCLOUD"})
    record.setdefault("requestParameters", {"sourceIPAddress": "127.0.0.1"})
    record.setdefault("responseElements", {"x-amz-request-id": request_id, "x-amz-id-2": uuid.uuid4().hex})
    record["s3"]["bucket"].setdefault("ownerIdentity", {"principalId": "LOCALCLOUD"})
    record["s3"]["object"].setdefault("sequencer", f"{time.time_ns():016X}")
    return record
