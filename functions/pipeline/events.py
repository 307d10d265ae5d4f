"""The events the functions receive, parsed the Powertools way: ``event_source`` data classes for S3
notifications, parser models (with ``EventBridgeEnvelope``) for the ``detail`` of EventBridge events."""

from __future__ import annotations

from typing import Any, TypedDict
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event
from pydantic import BaseModel, ConfigDict


class Ignored(TypedDict):
    """A handler's answer to an event about something this pipeline does not manage (another
    pipeline's job, a tuning trial, AWS's sample event, another endpoint): no AWS call, no record."""

    ignored: str  # the job or endpoint name
    reason: str


class TuningJobStateChange(BaseModel):
    """detail of "SageMaker HyperParameter Tuning Job State Change" (it carries no best trial)."""

    model_config = ConfigDict(extra="ignore")
    HyperParameterTuningJobName: str
    HyperParameterTuningJobStatus: str


class TrainingJobStateChange(BaseModel):
    """detail of "SageMaker Training Job State Change"."""

    model_config = ConfigDict(extra="ignore")
    TrainingJobName: str
    TrainingJobStatus: str
    TuningJobArn: str | None = None


class EndpointStateChange(BaseModel):
    """detail of "SageMaker Endpoint State Change" (status spelt IN_SERVICE, ROLLING_BACK, ... there)."""

    model_config = ConfigDict(extra="ignore")
    EndpointName: str
    EndpointStatus: str
    FailureReason: str | None = None


def s3_objects(event: S3Event) -> list[dict[str, Any]]:
    """The objects an S3 notification names, keys decoded (S3 URL-encodes them; the data class's
    ``get_object.key`` is the raw key)."""
    return [
        {
            "bucket": record.s3.bucket.name,
            "key": unquote_plus(record.s3.get_object.key),
            "etag": record.s3.get_object.etag or "",
            "version_id": record.s3.get_object.version_id,
        }
        for record in event.records
    ]
