"""Replay the failed-events queue: each event goes back to the function that failed on it.

Two kinds of message reach the queue (template.yaml, FailedEventsQueue):
- Lambda's on-failure destination record of an asynchronous invocation (S3 events):
  ``requestContext.functionArn`` names the function, ``requestPayload`` is the event;
- EventBridge's dead-letter message (the rule could not invoke its target): the body is the event,
  the ``TARGET_ARN`` message attribute names the function.
A message is deleted only when the replay succeeded; a failed one stays and becomes visible again
after the visibility timeout, so nothing is lost by running this.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cli.target import Target

# Long enough for the slowest function (ingest: 900 s) to answer before the message reappears.
VISIBILITY_TIMEOUT_S = 960

Invoker = Callable[[str, Any], tuple[bool, Any]]  # (function ARN, event) -> (succeeded, response)


@dataclass(frozen=True)
class Outcome:
    message_id: str
    function: str | None
    action: str  # "replayed", "failed", "skipped"
    detail: str

    def line(self) -> str:
        return f"{self.action:<8} {self.function or '-'}  {self.detail}  (message {self.message_id})"


def failed_event(message: dict[str, Any]) -> tuple[str, Any] | None:
    """(function ARN, event) of a queue message, or None when it is neither kind of record."""
    try:
        body = json.loads(message.get("Body", ""))
    except json.JSONDecodeError:
        return None
    if isinstance(body, dict) and "requestPayload" in body:
        function = body.get("requestContext", {}).get("functionArn")
        return (str(function), body["requestPayload"]) if function else None
    target = message.get("MessageAttributes", {}).get("TARGET_ARN", {}).get("StringValue")
    return (str(target), body) if target else None


def lambda_invoker(lambda_client: Any) -> Invoker:
    """Synchronous Invoke (RequestResponse): the answer says whether the replay worked."""

    def invoke(function_arn: str, event: Any) -> tuple[bool, Any]:
        response = lambda_client.invoke(
            FunctionName=function_arn, InvocationType="RequestResponse", Payload=json.dumps(event).encode()
        )
        raw = response["Payload"].read()
        payload = json.loads(raw) if raw else None
        return "FunctionError" not in response, payload

    return invoke


def summarize(payload: Any, limit: int = 160) -> str:
    if isinstance(payload, dict) and "errorType" in payload:
        text = f"{payload['errorType']}: {payload.get('errorMessage', '')}"
    elif isinstance(payload, list) and all(isinstance(item, dict) for item in payload):
        text = ", ".join(str(item.get("status", item)) for item in payload)
    elif isinstance(payload, dict) and "status" in payload:
        text = f"status={payload['status']}"
    else:
        text = json.dumps(payload, default=str)
    return text[:limit]


def redrive(sqs: Any, queue_url: str, invoke: Invoker, limit: int | None = None) -> list[Outcome]:
    """Replay every message of the queue once; returns what happened to each."""
    outcomes: list[Outcome] = []
    seen: set[str] = set()
    while limit is None or len(outcomes) < limit:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10 if limit is None else max(1, min(10, limit - len(outcomes))),
            WaitTimeSeconds=0,
            VisibilityTimeout=VISIBILITY_TIMEOUT_S,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        fresh = [message for message in batch if message["MessageId"] not in seen]
        if not fresh:
            return outcomes
        for message in fresh:
            seen.add(message["MessageId"])
            outcomes.append(_replay(sqs, queue_url, message, invoke))
    return outcomes


def _replay(sqs: Any, queue_url: str, message: dict[str, Any], invoke: Invoker) -> Outcome:
    found = failed_event(message)
    if found is None:
        return Outcome(message["MessageId"], None, "skipped", "not a Lambda or EventBridge failure record")
    function, event = found
    try:
        ok, payload = invoke(function, event)
    except Exception as error:  # the replay call itself failed (throttled, no such function): keep it
        return Outcome(message["MessageId"], function, "failed", f"{type(error).__name__}: {error}"[:160])
    if not ok:
        return Outcome(message["MessageId"], function, "failed", summarize(payload))
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return Outcome(message["MessageId"], function, "replayed", summarize(payload))


# -- the `redrive` command ------------------------------------------------------------------------
def cmd_redrive(args: argparse.Namespace, target: Target) -> int:
    from botocore.config import Config

    queue_url = args.queue_url or target.need("failed_events_queue", "--queue-url")
    # A replay runs as long as the function may (ingest: 900 s); one attempt, no SDK retry of it.
    lambda_client = target.session.client(
        "lambda", config=Config(read_timeout=960, connect_timeout=10, retries={"max_attempts": 1})
    )
    outcomes = redrive(target.client("sqs"), queue_url, lambda_invoker(lambda_client), args.limit)
    for outcome in outcomes:
        print(outcome.line())
    failed = sum(outcome.action != "replayed" for outcome in outcomes)
    print(f"{len(outcomes) - failed} replayed, {failed} left in the queue" if outcomes else "queue is empty")
    return 1 if failed else 0


def add_redrive(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """The ``redrive`` command and its flags (``common``: the location flags, repeated after it)."""
    redrive = commands.add_parser(
        "redrive", parents=[common], help="replay the failed-events queue through the same functions"
    )
    redrive.add_argument("--queue-url", help="failed-events queue (default: the FailedEventsQueueUrl output)")
    redrive.add_argument("--limit", type=int, help="replay at most this many messages")
    redrive.set_defaults(func=cmd_redrive)
