"""``python -m cli logs job|endpoint|function [NAME] [--follow]``: a training job's, an endpoint's or a
function's log, read from CloudWatch Logs only, so the same command works against AWS and the local
cloud (which writes the same groups and streams: localcloud/logs/names.py).

- ``job [NAME]``: ``/aws/sagemaker/TrainingJobs``, the job's streams (``<job>/...``); default: the
  newest training job of the stack (``--job-prefix``). ``--follow`` stops after the job has ended and
  its last lines are read, as the SageMaker SDK's ``logs_for_job(wait=True)`` does.
- ``endpoint [NAME]``: ``/aws/sagemaker/Endpoints/<name>``; default: the stack's endpoint.
- ``function NAME``: ``/aws/lambda/<function name>``; NAME may be the template's logical id (e.g.
  ``ClassifyFunction``), resolved from the stack's resources on AWS and from the state file locally.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import botocore.exceptions

from cli.target import CliError
from localcloud.logs.names import (
    TRAINING_JOBS_GROUP,
    endpoint_group,
    lambda_group,
    training_job_stream_prefix,
)
from localcloud.state import read_state_file

POLL_SECONDS = 2.0  # between reads with --follow (aws logs tail --follow polls about as often)
JOB_ENDED = ("Completed", "Failed", "Stopped")


class LogsTarget(Protocol):
    """What this command needs of cli.target.Target (structural: the tests pass a stack-only fake)."""

    local: bool
    endpoint: str | None
    job_prefix: str

    def client(self, service: str) -> Any: ...


@dataclass(frozen=True)
class LogSource:
    group: str
    stream_prefix: str | None = None
    ended: Callable[[], bool] | None = None  # --follow stops once this is true and the rest is read


def format_event(event: dict[str, Any]) -> str:
    """``<ISO time> <stream> <message>``, the layout of ``aws logs tail``."""
    when = datetime.fromtimestamp(event["timestamp"] / 1000, UTC).isoformat(timespec="milliseconds")
    return f"{when} {event['logStreamName']} {event['message'].rstrip(chr(10))}"


def read_events(logs: Any, source: LogSource, start_ms: int | None) -> Iterator[dict[str, Any]]:
    """Every event of the source from ``start_ms`` on, oldest first (FilterLogEvents, all pages)."""
    request: dict[str, Any] = {"logGroupName": source.group}
    if source.stream_prefix:
        request["logStreamNamePrefix"] = source.stream_prefix
    if start_ms is not None:
        request["startTime"] = start_ms
    for page in logs.get_paginator("filter_log_events").paginate(**request):
        yield from page.get("events", [])


def tail(
    logs: Any,
    source: LogSource,
    *,
    follow: bool,
    start_ms: int | None = None,
    write: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print the source's events; with ``follow``, keep polling for new ones. Returns lines printed."""
    seen: set[str] = set()  # events at the last timestamp: read again by the next startTime
    printed = 0
    while True:
        ended = bool(follow and source.ended and source.ended())  # before reading: nothing after it is lost
        try:
            events = list(read_events(logs, source, start_ms))
        except botocore.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            if not follow:
                raise CliError(f"no log group {source.group} (nothing has logged there yet)") from error
            events = []  # the job or function has not written yet: wait for it
        for event in events:
            if event["eventId"] in seen:
                continue
            write(format_event(event))
            printed += 1
        if events:
            start_ms = events[-1]["timestamp"]
            seen = {e["eventId"] for e in events if e["timestamp"] == start_ms}
        if not follow or ended:
            return printed
        sleep(POLL_SECONDS)


# -- naming the source ------------------------------------------------------------------------------
def newest_job(target: LogsTarget) -> str:
    jobs = target.client("sagemaker").list_training_jobs(
        NameContains=target.job_prefix, SortBy="CreationTime", SortOrder="Descending", MaxResults=1
    )["TrainingJobSummaries"]
    if not jobs:
        raise CliError(f"no training job named {target.job_prefix}* yet: pass the job's name")
    return str(jobs[0]["TrainingJobName"])


def function_name(args: argparse.Namespace, target: LogsTarget, name: str) -> str:
    """A logical id of the template (``ClassifyFunction``) as its function name; other names as given."""
    if target.local:
        functions = read_state_file(Path(args.state_file)).get("functions", {})
        return str(functions.get(name, name))
    if args.stack:
        try:
            resource = target.client("cloudformation").describe_stack_resource(
                StackName=args.stack, LogicalResourceId=name
            )["StackResourceDetail"]
        except botocore.exceptions.ClientError:
            return name  # not a logical id of the stack: a function name, then
        if resource.get("ResourceType") == "AWS::Lambda::Function":
            return str(resource["PhysicalResourceId"])
    return name


def log_source(args: argparse.Namespace, target: LogsTarget) -> LogSource:
    if args.kind == "job":
        job = args.name or newest_job(target)
        sagemaker = target.client("sagemaker")

        def ended() -> bool:
            status = sagemaker.describe_training_job(TrainingJobName=job)["TrainingJobStatus"]
            return status in JOB_ENDED

        return LogSource(TRAINING_JOBS_GROUP, training_job_stream_prefix(job), ended)
    if args.kind == "endpoint":
        name = args.name or target.endpoint
        if not name:
            raise CliError("no endpoint known: pass its name, --stack NAME or --local")
        return LogSource(endpoint_group(name))
    if not args.name:
        raise CliError("name the function (its name or the template's logical id)")
    return LogSource(lambda_group(function_name(args, target, args.name)))


def cmd_logs(args: argparse.Namespace, target: LogsTarget) -> int:
    start_ms = int((time.time() - args.since * 60) * 1000) if args.since else None
    source = log_source(args, target)  # a CliError is printed by cli.main
    try:
        tail(target.client("logs"), source, follow=args.follow, start_ms=start_ms)
    except KeyboardInterrupt:  # the way out of --follow for endpoints and functions
        return 0
    return 0


def add_logs(commands: Any, common: argparse.ArgumentParser) -> None:
    """The ``logs`` command, in cli.main's COMMANDS."""
    logs = commands.add_parser(
        "logs",
        parents=[common],
        help="a training job's, an endpoint's or a function's log (CloudWatch Logs)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    logs.add_argument("kind", choices=["job", "endpoint", "function"], help="whose log")
    logs.add_argument("name", nargs="?", help="its name (a function: or the template's logical id)")
    logs.add_argument("--follow", action="store_true", help="keep printing new lines (Ctrl-C stops)")
    logs.add_argument("--since", type=float, help="only the last this many minutes (default: all)")
    logs.set_defaults(func=cmd_logs)
