"""Endpoint configs: CreateEndpointConfig, DescribeEndpointConfig, ListEndpointConfigs,
DeleteEndpointConfig.

Each config is kept as the dict DescribeEndpointConfig returns, guarded by the context's lock. The
emulator serves one production variant per config, and each variant's model must exist (models.py).
"""

from __future__ import annotations

import copy
import time
from typing import Any

from localcloud.sagemaker import paging
from localcloud.sagemaker.exceptions import ValidationException
from localcloud.sagemaker.models import Models
from localcloud.sagemaker.registry import BackendContext


class EndpointConfigs:
    def __init__(self, context: BackendContext, models: Models) -> None:
        self.context = context
        self.models = models
        self.configs: dict[str, dict[str, Any]] = {}

    def create_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointConfigName"]
        variants = params["ProductionVariants"]
        if len(variants) != 1:
            raise ValidationException(
                "The local emulator serves exactly one production variant per endpoint config."
            )
        with self.context.lock:
            for variant in variants:
                self.models.get(variant["ModelName"])
                if not variant.get("ServerlessConfig") and not variant.get("InstanceType"):
                    raise ValidationException(
                        "Each production variant needs InstanceType or ServerlessConfig."
                    )
            arn = self.context.arn("endpoint-config", name)
            if name in self.configs:
                raise ValidationException(f'Cannot create already existing endpoint configuration "{arn}".')
            self.configs[name] = {
                "EndpointConfigName": name,
                "EndpointConfigArn": arn,
                "ProductionVariants": variants,
                "CreationTime": time.time(),
            }
        return {"EndpointConfigArn": arn}

    def describe_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.context.lock:
            return copy.deepcopy(self.get(params["EndpointConfigName"]))

    def get(self, name: str) -> dict[str, Any]:
        """The config's record (the caller holds the lock); ValidationException if there is none."""
        config = self.configs.get(name)
        if config is None:
            raise ValidationException(
                f'Could not find endpoint configuration "{self.context.arn("endpoint-config", name)}".'
            )
        return config

    def list_endpoint_configs(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.context.lock:
            rows = [
                {key: desc[key] for key in ("EndpointConfigName", "EndpointConfigArn", "CreationTime")}
                for desc in self.configs.values()
            ]
        rows = paging.filter_rows(rows, params, "EndpointConfigName", "")
        page, token = paging.page(
            rows, params, {"Name": "EndpointConfigName", "CreationTime": "CreationTime"}
        )
        return {"EndpointConfigs": page, **token}

    def delete_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.context.lock:
            self.get(params["EndpointConfigName"])
            del self.configs[params["EndpointConfigName"]]
        return {}

    def serverless(self, name: str) -> bool:
        """Whether the named config (if it still exists) serves serverless; the caller holds the lock."""
        config = self.configs.get(name)
        return config is not None and is_serverless(config)


def is_serverless(config: dict[str, Any]) -> bool:
    return any(variant.get("ServerlessConfig") for variant in config.get("ProductionVariants", []))
