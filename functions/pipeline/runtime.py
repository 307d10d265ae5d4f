"""What every handler creates on its first call instead of at import (Lambda cold start).

Lambda's cold start includes importing the handler module (bench/bench_cold_start.py, target
<= 150 ms), so handler modules import only Powertools' Logger/Tracer/Metrics and our own light
modules. Settings (pydantic), boto3 clients, the X-Ray recorder, event models and the idempotency
layer are created by the first invocation through its handler's ``prepare()`` and reused by later
invocations in the same sandbox. That moves cost into the first call, it does not remove it: the
bench reports "import" and "import + prepare()" separately.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import unquote_plus

from pipeline.adapters.aws import client
from pipeline.observability import xray_provider

if TYPE_CHECKING:
    from pydantic import BaseModel

    from pipeline.settings import Settings

Detail = TypeVar("Detail", bound="BaseModel")


def load_settings() -> Settings:
    """The process's settings (parsed once; pydantic is imported here on the first call)."""
    from pipeline.settings import get_settings

    return get_settings()


def prepare_common(*services: str) -> Settings:
    """Settings, the X-Ray recorder and the boto3 clients of ``services``; returns the settings."""
    settings = load_settings()
    xray_provider.recorder()
    for service in services:
        client(service)
    return settings


def s3_objects(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects an S3 notification names (Powertools' S3Event), keys decoded: S3 URL-encodes them."""
    from aws_lambda_powertools.utilities.data_classes import S3Event

    return [
        {
            "bucket": record.s3.bucket.name,
            "key": unquote_plus(record.s3.get_object.key),
            "etag": record.s3.get_object.etag or "",
            "version_id": record.s3.get_object.version_id,
        }
        for record in S3Event(event).records
    ]


def eventbridge_detail(event: dict[str, Any], model: type[Detail]) -> Detail:
    """The event's ``detail`` as ``model``, as @event_parser(envelope=EventBridgeEnvelope) gives it,
    without importing the parser (pydantic) at module import. A malformed event raises ValidationError."""
    from aws_lambda_powertools.utilities.parser import envelopes, parse

    return cast(Detail, parse(event=event, model=model, envelope=envelopes.EventBridgeEnvelope))
