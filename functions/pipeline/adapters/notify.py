"""Pipeline notifications on the SNS topic (subject + JSON body)."""

from __future__ import annotations

import json
from typing import Any

from pipeline.adapters.aws import client
from pipeline.powertools import logger


class Notifier:
    """SNS, one topic, the message as indented JSON. Errors (throttling, 5xx: transient) propagate;
    callers publish before their last write, so a retry publishes again (at least once)."""

    def __init__(self, topic_arn: str, sns_client: Any | None = None) -> None:
        self.topic_arn = topic_arn
        self.client = sns_client or client("sns")

    def publish(self, subject: str, message: dict[str, Any]) -> None:
        """Send one notification; the subject is shortened to what SNS accepts."""
        # SNS subjects are limited to 100 printable ASCII characters.
        safe_subject = subject.encode("ascii", "replace").decode()[:100]
        logger.info("notification", extra={"subject": safe_subject, "notification": message})
        self.client.publish(
            TopicArn=self.topic_arn, Subject=safe_subject, Message=json.dumps(message, indent=2, default=str)
        )
