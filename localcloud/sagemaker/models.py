"""Models: CreateModel, DescribeModel, ListModels, DeleteModel.

Each model is kept as the dict DescribeModel returns, guarded by the context's lock. Endpoint configs
check their variants' models here, and an endpoint's deploy reads its model's container from here.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from localcloud.sagemaker import paging
from localcloud.sagemaker.exceptions import ValidationException
from localcloud.sagemaker.registry import BackendContext


class Models:
    def __init__(self, context: BackendContext) -> None:
        self.context = context
        self.models: dict[str, dict[str, Any]] = {}

    def create_model(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["ModelName"]
        containers = params.get("Containers") or []
        container = params.get("PrimaryContainer") or (containers[0] if containers else None)
        if not container:
            raise ValidationException("Either PrimaryContainer or Containers must be specified.")
        if len(containers) > 1:
            raise ValidationException(
                "The local emulator serves one container per model (an inference pipeline is not emulated)."
            )
        if not container.get("ModelDataUrl"):
            raise ValidationException(
                "The local emulator needs PrimaryContainer.ModelDataUrl (an S3 model.tar.gz)."
            )
        if params.get("ExecutionRoleArn"):
            self.context.check_execution_role(params["ExecutionRoleArn"])
        arn = self.context.arn("model", name)
        desc = {
            "ModelName": name,
            "ModelArn": arn,
            # DescribeModel's PrimaryContainer and Containers are CreateModel's, as sent ("Containers: The
            # containers in the inference pipeline", docs.aws.amazon.com/sagemaker/latest/APIReference/
            # API_DescribeModel.html): none is made up for the other. serving_container reads either.
            **(
                {"PrimaryContainer": container}
                if "PrimaryContainer" in params
                else {"Containers": containers}
            ),
            "ExecutionRoleArn": params.get("ExecutionRoleArn", ""),
            "CreationTime": time.time(),
            "EnableNetworkIsolation": params.get("EnableNetworkIsolation", False),
        }
        with self.context.lock:
            if name in self.models:
                raise ValidationException(f'Cannot create already existing model "{arn}".')
            self.models[name] = desc
        return {"ModelArn": arn}

    def describe_model(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.context.lock:
            return copy.deepcopy(self.get(params["ModelName"]))

    def get(self, name: str) -> dict[str, Any]:
        """The model's record (the caller holds the lock); ValidationException if there is none."""
        desc = self.models.get(name)
        if desc is None:
            raise ValidationException(f'Could not find model "{self.context.arn("model", name)}".')
        return desc

    def list_models(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.context.lock:
            rows = [
                {key: desc[key] for key in ("ModelName", "ModelArn", "CreationTime")}
                for desc in self.models.values()
            ]
        rows = paging.filter_rows(rows, params, "ModelName", "")
        page, token = paging.page(rows, params, {"Name": "ModelName", "CreationTime": "CreationTime"})
        return {"Models": page, **token}

    def delete_model(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.context.lock:
            self.get(params["ModelName"])
            del self.models[params["ModelName"]]
        return {}


def serving_container(model: dict[str, Any]) -> dict[str, Any]:
    """The container a model's endpoint serves: its PrimaryContainer, or its one Containers entry."""
    container: dict[str, Any] = model.get("PrimaryContainer") or model["Containers"][0]
    return container
