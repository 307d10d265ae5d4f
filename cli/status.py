"""The commands that read what the pipeline did: ``status`` (jobs, endpoint, the last gate decision,
printed or as JSON) and ``report`` (the profiler report and loss plot of a profiled job)."""

from __future__ import annotations

import argparse
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from cli.target import CliError, Target
from dogclf import contract


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
    status["features_jobs"] = newest_training_jobs(sm, f"{prefix}{contract.FEATURES_INFIX}", args.limit)
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
    status["training_jobs"] = newest_training_jobs(sm, f"{prefix}{contract.TRAINING_INFIX}", args.limit)
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


def newest_training_jobs(sm: Any, name_contains: str, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` training jobs whose names contain ``name_contains``: name and status."""
    jobs = sm.list_training_jobs(
        NameContains=name_contains, SortBy="CreationTime", SortOrder="Descending", MaxResults=limit
    )
    return [
        {"name": job["TrainingJobName"], "status": job["TrainingJobStatus"]}
        for job in jobs.get("TrainingJobSummaries", [])
    ]


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


def add_status(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """The ``status`` command and its flags (``common``: the location flags, repeated after it)."""
    status = commands.add_parser("status", parents=[common], help="jobs, endpoint and the last gate decision")
    status.add_argument("--limit", type=int, default=5, help="jobs of each kind to list")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)


def add_report(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """The ``report`` command and its flags (``common``: the location flags, repeated after it)."""
    report = commands.add_parser(
        "report", parents=[common], help="download the profiler report and loss plot"
    )
    report.add_argument("--job", help="training job (default: the newest profiled job)")
    report.add_argument("--out", default="reports", help="folder to write into")
    report.set_defaults(func=cmd_report)
