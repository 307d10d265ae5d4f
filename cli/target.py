"""Where the pipeline is: the names (buckets, endpoint, queue, functions) and the boto3 session that
reaches them, from a CloudFormation stack's outputs, the local cloud's state file or explicit flags."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from dogclf import contract
from localcloud.state import DEFAULT_STATE_FILE, read_state_file

DEFAULT_JOB_PREFIX = "dogclf"
OUTPUT_KEYS = {
    "dataset_bucket": "DatasetBucketName",
    "inference_bucket": "InferenceBucketName",
    "artifacts_bucket": "ArtifactsBucketName",
    "endpoint": "EndpointName",
    "failed_events_queue": "FailedEventsQueueUrl",
    "import_function": "ImportUrlFunctionName",
}


class CliError(RuntimeError):
    """A user-facing error: printed without a traceback, exit code 1."""


@dataclass
class Target:
    """Resolved names plus the boto3 session that reaches them."""

    session: boto3.Session
    dataset_bucket: str | None
    inference_bucket: str | None
    artifacts_bucket: str | None
    endpoint: str | None
    job_prefix: str
    local: bool
    failed_events_queue: str | None = None
    import_function: str | None = None

    def client(self, service: str) -> Any:
        return self.session.client(service)

    def need(self, attribute: str, flag: str) -> str:
        value = getattr(self, attribute)
        if not value:
            raise CliError(f"no {attribute.replace('_', ' ')} known: pass {flag}, --stack NAME or --local")
        return str(value)


def resolve_target(args: argparse.Namespace) -> Target:
    names: dict[str, str | None] = dict.fromkeys(OUTPUT_KEYS)
    local = bool(args.local) or args.state_file != str(DEFAULT_STATE_FILE)
    if local:
        state_path = Path(args.state_file)
        if not state_path.is_file():
            raise CliError(
                f"{state_path} not found: start the local cloud with "
                "`python -m localcloud.demo --keep-running`"
            )
        state = read_state_file(state_path)
        # Point every boto3 client made by this process (and the SageMaker SDK) at the local cloud.
        os.environ.update(state["environment"])
        session = boto3.Session(region_name=state["region"])
        outputs = state.get("outputs", {})
        names.update({attr: outputs.get(key) for attr, key in OUTPUT_KEYS.items()})
    else:
        session = boto3.Session(region_name=args.region) if args.region else boto3.Session()
        if args.stack:
            stacks = session.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"]
            outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
            names.update({attr: outputs.get(key) for attr, key in OUTPUT_KEYS.items()})
    for attr, flag in (
        ("dataset_bucket", "bucket"),
        ("inference_bucket", "inference_bucket"),
        ("artifacts_bucket", "artifacts_bucket"),
        ("endpoint", "endpoint"),
    ):
        if getattr(args, flag, None):
            names[attr] = getattr(args, flag)
    endpoint = names["endpoint"]
    prefix = args.job_prefix or (
        endpoint.rsplit(contract.ENDPOINT_SUFFIX, 1)[0] if endpoint else DEFAULT_JOB_PREFIX
    )
    return Target(session=session, job_prefix=prefix, local=local, **names)


def add_location_arguments(parser: argparse.ArgumentParser, default: Any) -> None:
    where = parser.add_argument_group("where the pipeline is")
    where.add_argument(
        "--stack", default=default, help="CloudFormation stack whose outputs name the buckets and endpoint"
    )
    where.add_argument(
        "--local",
        action="store_true",
        default=default if default is argparse.SUPPRESS else False,
        help="use the local cloud described by --state-file",
    )
    where.add_argument(
        "--state-file",
        default=default if default is argparse.SUPPRESS else str(DEFAULT_STATE_FILE),
        help=f"the local cloud's state file (default {DEFAULT_STATE_FILE}); implies --local",
    )
    where.add_argument("--region", default=default, help="AWS region (default: boto3's configuration)")
    where.add_argument("--bucket", default=default, help="dataset bucket")
    where.add_argument("--inference-bucket", default=default, help="inference bucket")
    where.add_argument(
        "--artifacts-bucket", default=default, help="artifacts bucket (decisions, job outputs)"
    )
    where.add_argument("--endpoint", default=default, help="SageMaker endpoint name")
    where.add_argument(
        "--job-prefix", default=default, help="JobNamePrefix of the stack (default: from the endpoint name)"
    )
