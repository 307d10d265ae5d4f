"""Command line for the pipeline's users, against AWS or the local cloud alike.

Where things are:
  --stack NAME       read bucket and endpoint names from the CloudFormation stack's outputs (AWS);
  --local            the local cloud (its state file, --state-file, default .localcloud/state.json, is
                     written by `python -m localcloud.demo --keep-running` or `python -m localcloud`):
                     its endpoints and dummy credentials are used, so nothing reaches AWS;
  --bucket/--inference-bucket/--artifacts-bucket/--endpoint   explicit names (override the above).
Without --local, boto3's usual configuration decides (AWS_PROFILE, AWS_ENDPOINT_URL_*...).
"""

from __future__ import annotations

import argparse
import io
import json
import mimetypes
import os
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from cli.logs import add_logs_parser
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


# -- commands ---------------------------------------------------------------------------------------
def cmd_upload(args: argparse.Namespace, target: Target) -> int:
    path = Path(args.zip)
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    if path.suffix.lower() != ".zip":
        raise CliError(f"{path}: the pipeline ingests .zip archives only")
    bucket = target.need("dataset_bucket", "--bucket")
    name = args.key or path.name
    # The ingest triggers on .zip and .ZIP only (S3 suffix rules are case-sensitive): X.Zip or a bare
    # --key would never fire it.
    stem = name[:-4] if name.lower().endswith(".zip") else name
    key = f"{args.prefix}{stem}.zip"
    target.client("s3").upload_file(str(path), bucket, key)
    print(f"uploaded {path} to s3://{bucket}/{key}; ingest starts from the S3 event")
    return 0


def cmd_status(args: argparse.Namespace, target: Target) -> int:
    sm = target.client("sagemaker")
    prefix = target.job_prefix
    status: dict[str, Any] = {
        "features_jobs": [],
        "tuning_jobs": [],
        "training_jobs": [],
        "endpoint": None,
        "last_decision": None,
    }
    features = sm.list_training_jobs(
        NameContains=f"{prefix}{contract.FEATURES_INFIX}",
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=args.limit,
    )
    for job in features.get("TrainingJobSummaries", []):
        status["features_jobs"].append({"name": job["TrainingJobName"], "status": job["TrainingJobStatus"]})
    tuning = sm.list_hyper_parameter_tuning_jobs(
        NameContains=f"{prefix}{contract.TUNING_INFIX}",
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=args.limit,
    )
    for job in tuning.get("HyperParameterTuningJobSummaries", []):
        status["tuning_jobs"].append(
            {
                "name": job["HyperParameterTuningJobName"],
                "status": job["HyperParameterTuningJobStatus"],
                "trials": job.get("TrainingJobStatusCounters", {}),
            }
        )
    training = sm.list_training_jobs(
        NameContains=f"{prefix}{contract.TRAINING_INFIX}",
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=args.limit,
    )
    for job in training.get("TrainingJobSummaries", []):
        status["training_jobs"].append({"name": job["TrainingJobName"], "status": job["TrainingJobStatus"]})
    if target.endpoint:
        try:
            endpoint = sm.describe_endpoint(EndpointName=target.endpoint)
            status["endpoint"] = {
                "name": target.endpoint,
                "status": endpoint["EndpointStatus"],
                "config": endpoint.get("EndpointConfigName"),
            }
        except sm.exceptions.ClientError:
            status["endpoint"] = {"name": target.endpoint, "status": "absent"}
    if target.artifacts_bucket:
        status["last_decision"] = last_decision(target)
    if args.json:
        print(json.dumps(status, indent=2, default=str))
        return 0
    print_status(status)
    return 0


def print_status(status: dict[str, Any]) -> None:
    """cmd_status's human-readable form."""
    print("tuning jobs:")
    for job in status["tuning_jobs"] or [{"name": "(none)", "status": "", "trials": ""}]:
        print(f"  {job['name']:<40} {job['status']:<12} {job['trials']}")
    print("profiled training jobs:")
    for job in status["training_jobs"] or [{"name": "(none)", "status": ""}]:
        print(f"  {job['name']:<40} {job['status']}")
    endpoint = status["endpoint"]
    print(f"endpoint: {endpoint['name']} {endpoint['status']}" if endpoint else "endpoint: (unknown)")
    decision = status["last_decision"]
    if decision:
        verdict = "DEPLOY" if decision.get("deploy") else "REJECT"
        print(
            f"last gate decision: {verdict} {decision.get('training_job_name')} "
            f"{decision.get('metric_name')}={decision.get('metric_value')} "
            f"(threshold {decision.get('threshold')})"
        )
        for reason in decision.get("reasons", []):
            print(f"  reason: {reason}")
    else:
        print("last gate decision: (none)")


def last_decision(target: Target) -> dict[str, Any] | None:
    s3 = target.client("s3")
    bucket = target.need("artifacts_bucket", "--artifacts-bucket")
    newest: dict[str, Any] | None = None
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="decisions/"):
        for item in page.get("Contents", []):
            if newest is None or item["LastModified"] > newest["LastModified"]:
                newest = item
    if newest is None:
        return None
    return json.loads(s3.get_object(Bucket=bucket, Key=newest["Key"])["Body"].read())


def content_type_of(path: Path) -> str:
    kind = mimetypes.guess_type(path.name)[0]
    if kind not in ("image/jpeg", "image/png"):
        raise CliError(f"{path}: only .jpg, .jpeg and .png images can be classified")
    return kind


def cmd_classify(args: argparse.Namespace, target: Target) -> int:
    path = Path(args.image)
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    endpoint = target.need("endpoint", "--endpoint")
    body, content_type = path.read_bytes(), content_type_of(path)
    if args.via == "boto3":
        response = target.client("sagemaker-runtime").invoke_endpoint(
            EndpointName=endpoint, ContentType=content_type, Accept="application/json", Body=body
        )
        payload = response["Body"].read()
    else:
        payload = classify_with_sdk(target, endpoint, body, content_type)
    try:
        print(json.dumps(json.loads(payload), indent=2))
    except ValueError:
        print(payload.decode(errors="replace"))
    return 0


def classify_with_sdk(target: Target, endpoint_name: str, body: bytes, content_type: str) -> bytes:
    """The SageMaker Python SDK v3 way: sagemaker.core.resources.Endpoint.invoke."""
    from sagemaker.core.resources import Endpoint

    region = target.session.region_name
    endpoint = Endpoint.get(endpoint_name=endpoint_name, session=target.session, region=region)
    output = endpoint.invoke(body=body, content_type=content_type, accept="application/json")
    result = output.body
    return result.read() if hasattr(result, "read") else bytes(result)


def cmd_report(args: argparse.Namespace, target: Target) -> int:
    sm, s3 = target.client("sagemaker"), target.client("s3")
    job_name = args.job
    if not job_name:
        jobs = sm.list_training_jobs(
            NameContains=f"{target.job_prefix}{contract.TRAINING_INFIX}",
            SortBy="CreationTime",
            SortOrder="Descending",
        )["TrainingJobSummaries"]
        if not jobs:
            raise CliError(
                f"no profiled training job named {target.job_prefix}{contract.TRAINING_INFIX}* yet"
            )
        job_name = jobs[0]["TrainingJobName"]
    job = sm.describe_training_job(TrainingJobName=job_name)
    out_dir = Path(args.out) / job_name
    out_dir.mkdir(parents=True, exist_ok=True)
    base = job["OutputDataConfig"]["S3OutputPath"].rstrip("/")
    bucket, _, prefix = base.removeprefix("s3://").partition("/")
    job_prefix = f"{prefix}/{job_name}".lstrip("/")
    found: list[Path] = []
    # On AWS the ProfilerReport rule writes its HTML under rule-output/; train_model.py also writes one.
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{job_prefix}/rule-output/"
    ):
        for item in page.get("Contents", []):
            if item["Key"].endswith(contract.PROFILER_REPORT_FILE):
                local = out_dir / "rule-output-profiler-report.html"
                s3.download_file(bucket, item["Key"], str(local))
                found.append(local)
    archive_key = contract.job_output_key(prefix, job_name, contract.OUTPUT_ARCHIVE)
    try:
        data = s3.get_object(Bucket=bucket, Key=archive_key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        data = b""
    if data:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            archive.extractall(out_dir, filter="data")
        wanted = (contract.PROFILER_REPORT_FILE, contract.LOSS_PLOT_FILE)
        found += sorted(p for p in out_dir.rglob("*") if p.name in wanted)
    if not found:
        raise CliError(f"no profiler report for {job_name} (looked in s3://{bucket}/{job_prefix}/)")
    for path in found:
        print(path)
    return 0


def cmd_teardown(args: argparse.Namespace, target: Target) -> int:
    sm = target.client("sagemaker")
    endpoint = target.need("endpoint", "--endpoint")
    prefix = target.job_prefix
    if not args.yes:
        answer = input(f"delete endpoint {endpoint} and every model/endpoint config named {prefix}-*? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    # What the endpoint uses first (describe calls work everywhere), then older ones by prefix.
    configs: list[str] = []
    models: list[str] = []
    try:
        config_name = sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
        configs.append(config_name)
        variants = sm.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"]
        models += [v["ModelName"] for v in variants]
        sm.delete_endpoint(EndpointName=endpoint)
        print(f"deleted endpoint {endpoint}")
    except sm.exceptions.ClientError as error:
        print(f"endpoint {endpoint}: {error.response['Error']['Message']}")
    try:
        # Every page: one config and one model per training job pile up (List* return 10 a page).
        config_pages = sm.get_paginator("list_endpoint_configs").paginate(NameContains=f"{prefix}-")
        configs += [c["EndpointConfigName"] for page in config_pages for c in page["EndpointConfigs"]]
        model_pages = sm.get_paginator("list_models").paginate(NameContains=f"{prefix}-")
        models += [m["ModelName"] for page in model_pages for m in page["Models"]]
    except sm.exceptions.ClientError as error:  # an emulator without the List calls
        print(f"(not listing older configs/models: {error.response['Error']['Message']})")
    for config_name in dict.fromkeys(configs):
        sm.delete_endpoint_config(EndpointConfigName=config_name)
        print(f"deleted endpoint config {config_name}")
    for model_name in dict.fromkeys(models):
        sm.delete_model(ModelName=model_name)
        print(f"deleted model {model_name}")
    if not target.local:
        stack = args.stack or "<stack-name>"
        print(
            "\nThe buckets are retained on purpose (DeletionPolicy: Retain). To remove the stack itself:\n"
            f"  .venv-sam/bin/sam delete --stack-name {stack}\n"
            "then empty and delete the datasets/artifacts/inference buckets if you no longer need them."
        )
    return 0


def cmd_redrive(args: argparse.Namespace, target: Target) -> int:
    from botocore.config import Config

    from cli.redrive import lambda_invoker, redrive

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


def cmd_import_url(args: argparse.Namespace, target: Target) -> int:
    """Invoke the URL import function: it streams the zip into uploads/<name>.zip, and that object's
    S3 event starts ingest, as an upload would."""
    from botocore.config import Config

    function = args.function or target.need("import_function", "--function")
    event = {"url": args.url, **({"name": args.name} if args.name else {})}
    if args.no_wait:  # Event: Lambda retries transient errors; a rejection is notified on the topic
        target.client("lambda").invoke(
            FunctionName=function, InvocationType="Event", Payload=json.dumps(event).encode()
        )
        print(f"import of {args.url} queued ({function}); `status` shows the pipeline once ingest starts")
        return 0
    # RequestResponse waits for the function (up to its 900 s timeout); no client retries of a download.
    config = Config(read_timeout=960, connect_timeout=10, retries={"max_attempts": 1, "mode": "standard"})
    response = target.session.client("lambda", config=config).invoke(
        FunctionName=function, InvocationType="RequestResponse", Payload=json.dumps(event).encode()
    )
    raw = response["Payload"].read()
    result = json.loads(raw) if raw else {}
    if "FunctionError" in response:
        raise CliError(f"import failed: {result.get('errorType')}: {result.get('errorMessage')} (try again)")
    if result.get("status") != "imported":
        raise CliError(f"import rejected: {result.get('reason', result)}")
    print(
        f"imported {result['bytes']:,} bytes into s3://{result['bucket']}/{result['key']} in "
        f"{result['seconds']} s; ingest starts from its S3 event"
    )
    return 0


# -- parser -----------------------------------------------------------------------------------------
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


def build_parser() -> argparse.ArgumentParser:
    """Every command and flag (long only because it lists them)."""
    parser = argparse.ArgumentParser(
        prog="python -m cli", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_location_arguments(parser, default=None)
    # The same options after the command; SUPPRESS keeps an absent one from hiding the top-level value.
    common = argparse.ArgumentParser(add_help=False)
    add_location_arguments(common, default=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    upload = commands.add_parser(
        "upload", parents=[common], help="upload a dataset zip (starts the pipeline)"
    )
    upload.add_argument("zip", help="dataset zip in the dogImages layout")
    upload.add_argument("--prefix", default="uploads/", help="key prefix the ingest function listens on")
    upload.add_argument("--key", help="object name under the prefix (default: the file name)")
    upload.set_defaults(func=cmd_upload)

    status = commands.add_parser("status", parents=[common], help="jobs, endpoint and the last gate decision")
    status.add_argument("--limit", type=int, default=5, help="jobs of each kind to list")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)

    classify = commands.add_parser("classify", parents=[common], help="classify an image with the endpoint")
    classify.add_argument("image", help=".jpg/.jpeg/.png file")
    classify.add_argument(
        "--via",
        choices=["sdk", "boto3"],
        default="boto3",
        help="SageMaker SDK v3 Endpoint.invoke, or a plain boto3 sagemaker-runtime client",
    )
    classify.set_defaults(func=cmd_classify)

    report = commands.add_parser(
        "report", parents=[common], help="download the profiler report and loss plot"
    )
    report.add_argument("--job", help="training job (default: the newest profiled job)")
    report.add_argument("--out", default="reports", help="folder to write into")
    report.set_defaults(func=cmd_report)

    import_url = commands.add_parser(
        "import-url", parents=[common], help="import a dataset zip from an https:// URL (starts the pipeline)"
    )
    import_url.add_argument("url", help="https:// URL of a zip in the dogImages layout")
    import_url.add_argument("--name", help="dataset name: uploads/<name>.zip (default: from the URL)")
    import_url.add_argument(
        "--function", help="URL import function (default: the ImportUrlFunctionName output)"
    )
    import_url.add_argument(
        "--no-wait", action="store_true", help="queue the import (async invoke, retried) instead of waiting"
    )
    import_url.set_defaults(func=cmd_import_url)

    teardown = commands.add_parser("teardown", parents=[common], help="delete endpoint, configs and models")
    teardown.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    teardown.set_defaults(func=cmd_teardown)

    redrive = commands.add_parser(
        "redrive", parents=[common], help="replay the failed-events queue through the same functions"
    )
    redrive.add_argument("--queue-url", help="failed-events queue (default: the FailedEventsQueueUrl output)")
    redrive.add_argument("--limit", type=int, help="replay at most this many messages")
    redrive.set_defaults(func=cmd_redrive)
    add_logs_parser(commands, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args, resolve_target(args)))
    except CliError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # botocore errors: say what failed, without a traceback
        if type(error).__module__.startswith("botocore"):
            print(f"error: {error}", file=sys.stderr)
            return 1
        raise
