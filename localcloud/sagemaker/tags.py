"""ListTags, AddTags and DeleteTags on the emulator's resources (tags live on the event bus, which
puts them on every state-change event).

The SageMaker Python SDK calls ListTags whenever it attaches to a training job
(``EstimatorBase.attach`` -> ``sagemaker_session.list_tags``), so ``tuner.best_estimator()`` and
``PyTorch.attach`` need it.
"""

from __future__ import annotations

from typing import Any

from localcloud.sagemaker import paging
from localcloud.sagemaker.exceptions import ValidationException
from localcloud.sagemaker.registry import BackendContext

ARN_PREFIX = "arn:aws:sagemaker:"


class Tags:
    def __init__(self, context: BackendContext) -> None:
        self.context = context

    def _arn(self, params: dict[str, Any]) -> str:
        arn = str(params.get("ResourceArn") or "")
        if not arn.startswith(ARN_PREFIX):
            raise ValidationException(f"Invalid ResourceArn: {arn!r} is not a SageMaker resource ARN.")
        return arn

    def list_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        tags = self.context.events.tags_of(self._arn(params))
        rows = [{"Key": key, "Value": value} for key, value in tags.items()]
        page, token = paging.page(rows, params, {}, default_sort="")
        return {"Tags": page, **token}

    def add_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        added = {tag["Key"]: tag.get("Value", "") for tag in params.get("Tags") or []}
        arn = self._arn(params)
        self.context.events.update_tags(arn, added, [])
        return {
            "Tags": [{"Key": key, "Value": value} for key, value in self.context.events.tags_of(arn).items()]
        }

    def delete_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        self.context.events.update_tags(self._arn(params), {}, list(params.get("TagKeys") or []))
        return {}
