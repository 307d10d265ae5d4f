"""SageMaker control-plane calls, with "already exists" turned into a normal outcome.

Job, model and config names are deterministic, so a second attempt to create the same thing is a
duplicate delivery: it returns created=False instead of failing.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from pipeline.adapters.aws import client, error_code


def _already_exists(error: ClientError) -> bool:
    code = error_code(error)
    message = str(error.response.get("Error", {}).get("Message", "")).lower()
    return code == "ResourceInUse" or (code == "ValidationException" and "already exist" in message)


def _not_found(error: ClientError) -> bool:
    code = error_code(error)
    message = str(error.response.get("Error", {}).get("Message", "")).lower()
    return code in ("ResourceNotFound", "ValidationException") and (
        "could not find" in message or "not found" in message or "does not exist" in message
    )


def _in_progress(error: ClientError) -> bool:
    """ "Cannot update in-progress endpoint", "... while it is Deleting": another change is under way."""
    message = str(error.response.get("Error", {}).get("Message", "")).lower()
    busy = ("in-progress" in message, "in progress" in message, "deleting" in message)
    return error_code(error) == "ValidationException" and any(busy)


class SageMakerJobs:
    """The SageMaker control plane the pipeline drives: tuning and training jobs, models, endpoint
    configs and the endpoint. Requests and descriptions are the API's own dicts. "Already exists",
    "not found" and "change in progress" come back as values where a method says so (duplicate
    deliveries and races); every other client error (throttling, 5xx: transient) propagates."""

    def __init__(self, sagemaker_client: Any | None = None) -> None:
        self.client = sagemaker_client or client("sagemaker")

    def _create(self, operation: str, request: dict[str, Any]) -> bool:
        try:
            getattr(self.client, operation)(**request)
        except ClientError as error:
            if _already_exists(error):
                return False
            raise
        return True

    def create_tuning_job(self, request: dict[str, Any]) -> bool:
        """CreateHyperParameterTuningJob; False when it already exists."""
        return self._create("create_hyper_parameter_tuning_job", request)

    def describe_tuning_job(self, name: str) -> dict[str, Any]:
        """DescribeHyperParameterTuningJob; a missing job raises."""
        return self.client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)

    def create_training_job(self, request: dict[str, Any]) -> bool:
        """CreateTrainingJob; False when it already exists."""
        return self._create("create_training_job", request)

    def describe_training_job(self, name: str) -> dict[str, Any]:
        """DescribeTrainingJob; a missing job raises."""
        return self.client.describe_training_job(TrainingJobName=name)

    def create_model(self, request: dict[str, Any]) -> bool:
        """CreateModel; False when it already exists."""
        return self._create("create_model", request)

    def create_endpoint_config(self, request: dict[str, Any]) -> bool:
        """CreateEndpointConfig; False when it already exists."""
        return self._create("create_endpoint_config", request)

    def describe_endpoint(self, name: str) -> dict[str, Any] | None:
        """DescribeEndpoint; None when there is no endpoint."""
        try:
            return self.client.describe_endpoint(EndpointName=name)
        except ClientError as error:
            if _not_found(error):
                return None
            raise

    def create_endpoint(self, name: str, config_name: str) -> bool:
        """CreateEndpoint; False when it already exists."""
        return self._create("create_endpoint", {"EndpointName": name, "EndpointConfigName": config_name})

    def update_endpoint_if_idle(self, request: dict[str, Any]) -> bool:
        """UpdateEndpoint; False when SageMaker refuses it because a change is already in progress."""
        try:
            self.client.update_endpoint(**request)
        except ClientError as error:
            if _in_progress(error):
                return False
            raise
        return True

    def delete_endpoint(self, name: str) -> bool:
        """DeleteEndpoint; False when it is already gone or already being deleted."""
        try:
            self.client.delete_endpoint(EndpointName=name)
        except ClientError as error:
            if _not_found(error) or _in_progress(error):
                return False
            raise
        return True

    def list_endpoint_configs(self, name_contains: str) -> list[tuple[str, float]]:
        """(name, CreationTime as epoch seconds) of every endpoint config, all pages."""
        pages = self.client.get_paginator("list_endpoint_configs").paginate(NameContains=name_contains)
        return [
            (row["EndpointConfigName"], row["CreationTime"].timestamp())
            for page in pages
            for row in page.get("EndpointConfigs", [])
        ]

    def list_models(self, name_contains: str) -> list[tuple[str, float]]:
        """(name, CreationTime as epoch seconds) of every matching model, all pages."""
        pages = self.client.get_paginator("list_models").paginate(NameContains=name_contains)
        return [
            (row["ModelName"], row["CreationTime"].timestamp())
            for page in pages
            for row in page.get("Models", [])
        ]

    def delete_endpoint_config(self, name: str) -> None:
        """DeleteEndpointConfig; already gone is not an error."""
        try:
            self.client.delete_endpoint_config(EndpointConfigName=name)
        except ClientError as error:
            if not _not_found(error):
                raise

    def delete_model(self, name: str) -> None:
        """DeleteModel; already gone is not an error."""
        try:
            self.client.delete_model(ModelName=name)
        except ClientError as error:
            if not _not_found(error):
                raise
