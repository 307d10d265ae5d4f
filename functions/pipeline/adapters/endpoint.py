"""The model endpoint, behind a Protocol: classify talks to ``Predictor``, not to boto3.

``SageMakerEndpoint`` is the one implementation (InvokeEndpoint + DescribeEndpoint); tests and
other runtimes can pass anything with the same two methods.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from botocore.exceptions import ClientError

from pipeline.adapters.aws import client, error_code


class Predictor(Protocol):
    name: str

    def predict(self, body: bytes, content_type: str) -> Any:
        """The endpoint's JSON answer for one image; raises the client's errors unchanged."""
        ...

    def status(self) -> str:
        """EndpointStatus ("InService", "Updating", ...), or "Missing" when there is no endpoint."""
        ...


class SageMakerEndpoint:
    def __init__(
        self, name: str, runtime_client: Any | None = None, sagemaker_client: Any | None = None
    ) -> None:
        self.name = name
        self.runtime = runtime_client or client("sagemaker-runtime")
        self.sagemaker = sagemaker_client or client("sagemaker")

    def predict(self, body: bytes, content_type: str) -> Any:
        response = self.runtime.invoke_endpoint(
            EndpointName=self.name, ContentType=content_type, Accept="application/json", Body=body
        )
        return json.loads(response["Body"].read())

    def status(self) -> str:
        try:
            return str(self.sagemaker.describe_endpoint(EndpointName=self.name)["EndpointStatus"])
        except ClientError as error:
            if error_code(error) == "ValidationException" and "could not find" in str(error).lower():
                return "Missing"
            raise
