"""InvokeEndpoint on the endpoints of endpoints.py: the payload limits, the model server's answer
or a ``ModelError`` carrying its status and message, and the variant that served the request.

The rest-json front (path, headers) is runtime.py; this is the backend half, like moto's
sagemakerruntime service beside its sagemaker one.
"""

from __future__ import annotations

from localcloud.logs.names import endpoint_group
from localcloud.sagemaker.endpoint_configs import EndpointConfigs
from localcloud.sagemaker.endpoints import Endpoints
from localcloud.sagemaker.exceptions import ModelError, RuntimeValidationError
from localcloud.sagemaker.registry import BackendContext
from localcloud.shared import ACCOUNT_ID


class Invocations:
    def __init__(self, context: BackendContext, endpoints: Endpoints, configs: EndpointConfigs) -> None:
        self.context = context
        self.endpoints = endpoints
        self.configs = configs

    def invoke_endpoint(
        self, name: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        with self.context.lock:
            endpoint = self.endpoints.endpoints.get(name)
            server = endpoint.server if endpoint else None
            if endpoint is None or server is None:
                raise RuntimeValidationError(f"Endpoint {name} of account {ACCOUNT_ID} not found.")
            serverless = bool(
                self.configs.configs[endpoint.desc["EndpointConfigName"]]["ProductionVariants"][0].get(
                    "ServerlessConfig"
                )
            )
            check_payload_size(len(body), serverless)
            server.acquire()  # under the lock: an update cannot stop this server before we release
        try:
            status, response_headers, payload = server.request("POST", "/invocations", body, headers)
        except OSError as error:
            raise ModelError(
                f'Received server error (500) from primary with message "{error}".',
                500,
                str(error),
                self._log_stream(name),
            ) from error
        finally:
            server.release()
        if status >= 400:
            text = payload.decode("utf-8", errors="replace")
            kind = "client" if status < 500 else "server"
            raise ModelError(
                f'Received {kind} error ({status}) from primary with message "{text}". See '
                f"https://{self.context.region}.console.aws.amazon.com/cloudwatch/home?region={self.context.region}#logEventViewer:"
                f"group=/aws/sagemaker/Endpoints/{name} in account {ACCOUNT_ID} for more information.",
                status,
                text,
                self._log_stream(name),
            )
        variant = "AllTraffic"
        with self.context.lock:
            if endpoint.desc["EndpointConfigName"] in self.configs.configs:
                variant = self.configs.configs[endpoint.desc["EndpointConfigName"]]["ProductionVariants"][0][
                    "VariantName"
                ]
        return (
            status,
            {
                "Content-Type": response_headers.get("content-type", "application/json"),
                "x-Amzn-Invoked-Production-Variant": variant,
            },
            payload,
        )

    def _log_stream(self, name: str) -> str:
        return f"arn:aws:logs:{self.context.region}:{ACCOUNT_ID}:log-group:{endpoint_group(name)}"


# InvokeEndpoint's request payload limits: the API's Body maximum (botocore's model: 6291456 bytes)
# for instance endpoints; serverless endpoints take 4 MB ("The maximum request and response payload
# size for serverless invocations is 4 MB", SageMaker developer guide, serverless-endpoints-invoke).
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
MAX_SERVERLESS_PAYLOAD_BYTES = 4 * 1024 * 1024


def check_payload_size(size: int, serverless: bool) -> None:
    limit = MAX_SERVERLESS_PAYLOAD_BYTES if serverless else MAX_PAYLOAD_BYTES
    if size > limit:
        kind = "serverless endpoints" if serverless else "endpoints"
        megabytes = limit // (1024 * 1024)
        raise RuntimeValidationError(
            f"Request payload of {size} bytes exceeds the {megabytes} MB limit of {kind}."
        )
