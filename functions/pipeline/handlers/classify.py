"""Image under input/ of the inference bucket (S3 event), {"bucket","key"} or {"image": base64}
-> top-k prediction from the endpoint (pipeline.classify). Writing the same result twice is harmless,
so this function does not use the idempotency table."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline.adapters.endpoint import SageMakerEndpoint
from pipeline.adapters.s3 import S3Store
from pipeline.classify import Classifier, ClassifyError, is_image_key
from pipeline.events import s3_objects
from pipeline.powertools import logger, metrics, tracer
from pipeline.settings import ClassifySettings

settings = ClassifySettings.from_env()
store = S3Store()
endpoint = SageMakerEndpoint(settings.endpoint_name)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> Any:
    # Three shapes (S3 notification, direct {"bucket","key"}, direct {"image"}), so the S3 data class
    # is applied here rather than with @event_source.
    classifier = Classifier(settings, store, endpoint, remaining_ms=context.get_remaining_time_in_millis)
    if "Records" in event:
        results = []
        for obj in s3_objects(S3Event(event)):
            # The S3 filter is prefix-only (its suffix match is case-sensitive): other keys end here.
            if not is_image_key(obj["key"]):
                logger.info("not a .jpg/.jpeg/.png key, ignored", extra={"key": obj["key"]})
                continue
            results.append(classifier.classify_object(obj["bucket"], obj["key"]))
        return results
    if "bucket" in event and "key" in event:
        return classifier.classify_object(event["bucket"], event["key"])
    if "image" in event:
        return classifier.classify_base64(event["image"])
    raise ClassifyError("bad-request", 'expected an S3 event, {"bucket", "key"} or {"image": <base64>}')
