"""Where AWS writes each service's log lines: one definition, used by the local cloud and the CLI.

- SageMaker (Developer Guide, "Log Amazon SageMaker AI events with Amazon CloudWatch",
  https://docs.aws.amazon.com/sagemaker/latest/dg/logging-cloudwatch.html; its source is
  awsdocs/amazon-sagemaker-developer-guide doc_source/logging-cloudwatch.md):
  group ``/aws/sagemaker/TrainingJobs``,
  stream ``[training-job-name]/algo-[instance-number-in-cluster]-[epoch_timestamp]``;
  group ``/aws/sagemaker/Endpoints/[EndpointName]``, stream ``[production-variant-name]/[instance-id]``.
  The SDK reads them so: sagemaker/session.py ``logs_for_job`` lists streams with
  ``logStreamNamePrefix=job_name + "/"``.
- Lambda (Lambda Operator Guide, "How CloudWatch structures logs",
  https://docs.aws.amazon.com/lambda/latest/operatorguide/log-structure.html): group
  ``/aws/lambda/function-name``; one stream per execution environment, named
  ``YYYY/MM/DD[Function version][Execution environment GUID]``, e.g. ``2026/12/07/[$LATEST]<32 hex>``.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime

TRAINING_JOBS_GROUP = "/aws/sagemaker/TrainingJobs"
ENDPOINTS_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"
LAMBDA_GROUP_PREFIX = "/aws/lambda/"
LAMBDA_VERSION = "$LATEST"  # the emulator runs unpublished code only


def training_job_stream(job_name: str, started_epoch_s: float, host_number: int = 1) -> str:
    """``<job>/algo-<n>-<epoch seconds>``: one stream per instance (the emulator runs one, algo-1)."""
    return f"{job_name}/algo-{host_number}-{int(started_epoch_s)}"


def training_job_stream_prefix(job_name: str) -> str:
    """What the SDK and ``aws logs tail --log-stream-name-prefix`` select a job's streams by."""
    return f"{job_name}/"


def endpoint_group(endpoint_name: str) -> str:
    return f"{ENDPOINTS_GROUP_PREFIX}{endpoint_name}"


def endpoint_instance_id() -> str:
    """An EC2-style instance id (``i-`` and 17 hex digits): each local server plays one instance."""
    return "i-" + secrets.token_hex(9)[:17]


def endpoint_stream(variant_name: str, instance_id: str) -> str:
    return f"{variant_name}/{instance_id}"


def lambda_group(function_name: str) -> str:
    return f"{LAMBDA_GROUP_PREFIX}{function_name}"


def lambda_stream(created: datetime | None = None, version: str = LAMBDA_VERSION) -> str:
    """A new execution environment's stream: its UTC creation date, version and a fresh GUID."""
    when = created or datetime.now(UTC)
    return f"{when:%Y/%m/%d}/[{version}]{uuid.uuid4().hex}"
