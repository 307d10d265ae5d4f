"""Models, endpoint configs and endpoints, and InvokeEndpoint on them.

Each resource is kept as the dict its Describe call returns, guarded by the context's lock. Creating
or updating an endpoint starts a model server (``endpoints.ModelServerProcess``) in its own thread;
an update switches traffic only once the new server is ready, then drains the old one, and rolls
back (the old config keeps serving) when the new one fails, as SageMaker does.
"""

from __future__ import annotations

import copy
import logging
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.exceptions

from localcloud.sagemaker import paging
from localcloud.sagemaker.exceptions import ModelError, RuntimeValidationError, ValidationException
from localcloud.sagemaker.registry import BackendContext
from localcloud.sagemaker.runners.endpoint import ModelServerProcess, ModelServerStartError, serving_python
from localcloud.sagemaker.runners.job_files import parse_s3_uri
from localcloud.shared import ACCOUNT_ID

logger = logging.getLogger("localcloud.sagemaker")


@dataclass
class Endpoint:
    name: str
    desc: dict[str, Any]
    server: ModelServerProcess | None = None
    generation: int = 0


class EndpointsBackend:
    def __init__(self, context: BackendContext) -> None:
        self.context = context
        self.models: dict[str, dict[str, Any]] = {}
        self.endpoint_configs: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, Endpoint] = {}

    # -- models, endpoint configs ------------------------------------------------------------------

    def create_model(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["ModelName"]
        container = params.get("PrimaryContainer") or (params.get("Containers") or [None])[0]
        if not container:
            raise ValidationException("Either PrimaryContainer or Containers must be specified.")
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
            "PrimaryContainer": container,
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
            desc = self.models.get(params["ModelName"])
            if desc is None:
                raise ValidationException(
                    f'Could not find model "{self.context.arn("model", params["ModelName"])}".'
                )
            return copy.deepcopy(desc)

    def list_models(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.context.lock:
            rows = [
                {key: desc[key] for key in ("ModelName", "ModelArn", "CreationTime")}
                for desc in self.models.values()
            ]
        rows = paging.filter_rows(rows, params, "ModelName", "")
        page, token = paging.page(rows, params, {"Name": "ModelName", "CreationTime": "CreationTime"})
        return {"Models": page, **token}

    def list_endpoint_configs(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.context.lock:
            rows = [
                {key: desc[key] for key in ("EndpointConfigName", "EndpointConfigArn", "CreationTime")}
                for desc in self.endpoint_configs.values()
            ]
        rows = paging.filter_rows(rows, params, "EndpointConfigName", "")
        page, token = paging.page(
            rows, params, {"Name": "EndpointConfigName", "CreationTime": "CreationTime"}
        )
        return {"EndpointConfigs": page, **token}

    def delete_model(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.context.lock:
            if self.models.pop(params["ModelName"], None) is None:
                raise ValidationException(
                    f'Could not find model "{self.context.arn("model", params["ModelName"])}".'
                )
        return {}

    def create_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointConfigName"]
        variants = params["ProductionVariants"]
        if len(variants) != 1:
            raise ValidationException(
                "The local emulator serves exactly one production variant per endpoint config."
            )
        with self.context.lock:
            for variant in variants:
                if variant["ModelName"] not in self.models:
                    raise ValidationException(
                        f'Could not find model "{self.context.arn("model", variant["ModelName"])}".'
                    )
                if not variant.get("ServerlessConfig") and not variant.get("InstanceType"):
                    raise ValidationException(
                        "Each production variant needs InstanceType or ServerlessConfig."
                    )
            arn = self.context.arn("endpoint-config", name)
            if name in self.endpoint_configs:
                raise ValidationException(f'Cannot create already existing endpoint configuration "{arn}".')
            self.endpoint_configs[name] = {
                "EndpointConfigName": name,
                "EndpointConfigArn": arn,
                "ProductionVariants": variants,
                "CreationTime": time.time(),
            }
        return {"EndpointConfigArn": arn}

    def describe_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.context.lock:
            return copy.deepcopy(self._get_endpoint_config(params["EndpointConfigName"]))

    def _get_endpoint_config(self, name: str) -> dict[str, Any]:
        config = self.endpoint_configs.get(name)
        if config is None:
            raise ValidationException(
                f'Could not find endpoint configuration "{self.context.arn("endpoint-config", name)}".'
            )
        return config

    def delete_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.context.lock:
            self._get_endpoint_config(params["EndpointConfigName"])
            del self.endpoint_configs[params["EndpointConfigName"]]
        return {}

    # -- endpoints ---------------------------------------------------------------------------------

    def create_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        arn = self.context.arn("endpoint", name)
        now = time.time()
        with self.context.lock:
            config = self._get_endpoint_config(params["EndpointConfigName"])
            if name in self.endpoints:
                raise ValidationException(f'Cannot create already existing endpoint "{arn}".')
            endpoint = Endpoint(
                name=name,
                desc={
                    "EndpointName": name,
                    "EndpointArn": arn,
                    "EndpointConfigName": config["EndpointConfigName"],
                    "EndpointStatus": "Creating",
                    "CreationTime": now,
                    "LastModifiedTime": now,
                },
            )
            self.endpoints[name] = endpoint
            snapshot = self._endpoint_detail(endpoint)
        self.context.events.remember_tags(arn, params)
        self._emit_state(snapshot)
        self.context.spawn(lambda: self._deploy(endpoint, config, updating=False), f"deploy-{name}")
        return {"EndpointArn": arn}

    def update_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        with self.context.lock:
            endpoint = self._get_endpoint(name)
            config = self._get_endpoint_config(params["EndpointConfigName"])
            status = endpoint.desc["EndpointStatus"]
            if status != "InService":
                raise ValidationException(
                    f'Cannot update in-progress endpoint "{endpoint.desc["EndpointArn"]}".'
                )
            if self._serverless(endpoint.desc["EndpointConfigName"]) != is_serverless(config):
                # AWS: updating a real-time endpoint to a serverless one "is currently not supported"
                # (https://docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints-update.html);
                # serverless to real-time is undocumented, so refused too (the strict side). The
                # wording is ours; the error code is the ValidationException AWS's API returns.
                raise ValidationException(
                    f'Cannot update endpoint "{endpoint.desc["EndpointArn"]}" between a serverless and '
                    "an instance-based endpoint config: not supported; delete and create it instead."
                )
            endpoint.desc.update(EndpointStatus="Updating", LastModifiedTime=time.time())
            endpoint.desc.pop("FailureReason", None)
            snapshot = self._endpoint_detail(endpoint)
        self._emit_state(snapshot)
        self.context.spawn(lambda: self._deploy(endpoint, config, updating=True), f"update-{name}")
        return {"EndpointArn": endpoint.desc["EndpointArn"]}

    def _serverless(self, config_name: str) -> bool:
        config = self.endpoint_configs.get(config_name)
        return config is not None and is_serverless(config)

    def _emit_state(self, snapshot: dict[str, Any]) -> None:
        """An endpoint state-change event, unless the endpoint is serverless and the emulator plays an
        account where those are not sent (BackendContext.serverless_endpoint_events): AWS documents
        the events for real-time endpoints and says nothing of serverless ones."""
        with self.context.lock:
            serverless = self._serverless(snapshot["EndpointConfigName"])
        if serverless and not self.context.serverless_endpoint_events:
            logger.debug("endpoint %s: state event suppressed (serverless)", snapshot["EndpointName"])
            return
        self.context.emit("SageMaker Endpoint State Change", snapshot["EndpointArn"], snapshot)

    def _get_endpoint(self, name: str) -> Endpoint:
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            raise ValidationException(f'Could not find endpoint "{self.context.arn("endpoint", name)}".')
        return endpoint

    def _endpoint_detail(self, endpoint: Endpoint) -> dict[str, Any]:
        desc = copy.deepcopy(endpoint.desc)
        config = self.endpoint_configs.get(desc["EndpointConfigName"])
        if config and desc["EndpointStatus"] != "Creating":
            desc["ProductionVariants"] = [
                variant_summary(variant, desc["LastModifiedTime"]) for variant in config["ProductionVariants"]
            ]
        return desc

    def _deploy(self, endpoint: Endpoint, config: dict[str, Any], updating: bool) -> None:
        """Start a server for `config`; on success switch to it, then drain and stop the old one.

        One sequence (start, roll back or switch under the lock, drain): kept whole so the lock's
        scope around the switch stays visible, hence a little over 60 lines.
        """
        with self.context.lock:
            endpoint.generation += 1
            generation = endpoint.generation
        variant = config["ProductionVariants"][0]
        work_dir = self.context.state_dir / "endpoints" / endpoint.name / f"gen-{generation}"
        server: ModelServerProcess | None = None
        faults = self.context.faults
        fault = faults.endpoint_fault("update" if updating else "create") if faults else None
        try:
            if fault == "fail":
                raise ModelServerStartError(
                    "injected fault (localcloud.faults.spec): the server did not start"
                )
            with self.context.lock:
                model = copy.deepcopy(self.models.get(variant["ModelName"]))
            if model is None:
                raise ModelServerStartError(f"model {variant['ModelName']} was deleted")
            model_dir = self._fetch_model(model, work_dir)
            environment = dict(model["PrimaryContainer"].get("Environment") or {})
            environment["SAGEMAKER_ENDPOINT_NAME"] = endpoint.name
            log_path = work_dir / "server.log"
            # Serving runs in the base env (the inference image), or in an overlay over it holding the
            # model's code/requirements.txt; never in a training job's overlay.
            python = serving_python(model_dir, log_path)
            server = ModelServerProcess(endpoint.name, model_dir, environment, log_path, python=python)
            server.start()
            server.wait_ready(self.context.endpoint_start_timeout)
            if fault == "rollback":  # blue/green: an alarm fires while baking; traffic goes back
                with self.context.lock:
                    endpoint.desc.update(EndpointStatus="RollingBack", LastModifiedTime=time.time())
                    snapshot = self._endpoint_detail(endpoint)
                self._emit_state(snapshot)
                raise ModelServerStartError(
                    "injected fault (localcloud.faults.spec): rollback alarm in ALARM"
                )
        except (
            ModelServerStartError,
            botocore.exceptions.BotoCoreError,
            botocore.exceptions.ClientError,
            tarfile.TarError,
            OSError,
        ) as error:
            if server:
                server.stop()
            reason = f"{type(error).__name__}: {error}"[:1024]
            logger.warning("endpoint %s: deploy failed: %s", endpoint.name, reason)
            with self.context.lock:
                if updating:
                    # SageMaker rolls a failed update back: the old config keeps serving.
                    endpoint.desc.update(
                        EndpointStatus="InService",
                        FailureReason=f"Update failed, rolled back: {reason}"[:1024],
                    )
                else:
                    endpoint.desc.update(EndpointStatus="Failed", FailureReason=reason)
                endpoint.desc["LastModifiedTime"] = time.time()
                snapshot = self._endpoint_detail(endpoint)
            self._emit_state(snapshot)
            return
        old: ModelServerProcess | None
        with self.context.lock:
            if self.endpoints.get(endpoint.name) is not endpoint:  # deleted while starting
                old = server
            else:
                old = endpoint.server
                endpoint.server = server
                endpoint.desc.update(
                    EndpointStatus="InService",
                    EndpointConfigName=config["EndpointConfigName"],
                    LastModifiedTime=time.time(),
                )
            snapshot = self._endpoint_detail(endpoint)
        if old is not None:
            old.drain_and_stop()
        if old is not server:
            self._emit_state(snapshot)

    def _fetch_model(self, model: dict[str, Any], work_dir: Path) -> Path:
        model_dir = work_dir / "model"
        model_dir.mkdir(parents=True, exist_ok=True)
        container = model["PrimaryContainer"]
        bucket, key = parse_s3_uri(container["ModelDataUrl"])
        archive = work_dir / "model.tar.gz"
        s3 = self.context.s3_client(model.get("ExecutionRoleArn"))  # SageMaker acts as the model's role
        s3.download_file(bucket, key, str(archive))
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(model_dir, filter="data")
        submit = (container.get("Environment") or {}).get("SAGEMAKER_SUBMIT_DIRECTORY", "")
        if submit.startswith("s3://"):
            # Inference code shipped separately (SDK's non-repacked form): unpack it into code/.
            source_archive = work_dir / "sourcedir.tar.gz"
            source_bucket, source_key = parse_s3_uri(submit)
            s3.download_file(source_bucket, source_key, str(source_archive))
            with tarfile.open(source_archive, "r:gz") as tar:
                tar.extractall(model_dir / "code", filter="data")
        return model_dir

    def describe_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.context.lock:
            return self._endpoint_detail(self._get_endpoint(params["EndpointName"]))

    def delete_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.context.lock:
            endpoint = self._get_endpoint(params["EndpointName"])
            endpoint.desc.update(EndpointStatus="Deleting", LastModifiedTime=time.time())
            snapshot = self._endpoint_detail(endpoint)
            del self.endpoints[endpoint.name]
            server, endpoint.server = endpoint.server, None
        self._emit_state(snapshot)
        if server:
            self.context.spawn(server.drain_and_stop, f"delete-{endpoint.name}")
        return {}

    def list_endpoints(self, params: dict[str, Any]) -> dict[str, Any]:
        keys = ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus")
        with self.context.lock:
            rows = [{key: endpoint.desc[key] for key in keys} for endpoint in self.endpoints.values()]
        rows = paging.filter_rows(rows, params, "EndpointName", "EndpointStatus")
        page, token = paging.page(
            rows, params, {"Name": "EndpointName", "CreationTime": "CreationTime", "Status": "EndpointStatus"}
        )
        return {"Endpoints": page, **token}

    # -- runtime --------------------------------------------------------------------------------------

    def invoke_endpoint(
        self, name: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        with self.context.lock:
            endpoint = self.endpoints.get(name)
            server = endpoint.server if endpoint else None
            if endpoint is None or server is None:
                raise RuntimeValidationError(f"Endpoint {name} of account {ACCOUNT_ID} not found.")
            serverless = bool(
                self.endpoint_configs[endpoint.desc["EndpointConfigName"]]["ProductionVariants"][0].get(
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
            if endpoint.desc["EndpointConfigName"] in self.endpoint_configs:
                variant = self.endpoint_configs[endpoint.desc["EndpointConfigName"]]["ProductionVariants"][0][
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
        return f"arn:aws:logs:{self.context.region}:{ACCOUNT_ID}:log-group:/aws/sagemaker/Endpoints/{name}"

    def servers(self) -> list[ModelServerProcess]:
        with self.context.lock:
            return [endpoint.server for endpoint in self.endpoints.values() if endpoint.server]


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


def is_serverless(config: dict[str, Any]) -> bool:
    return any(variant.get("ServerlessConfig") for variant in config.get("ProductionVariants", []))


def variant_summary(variant: dict[str, Any], when: float) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "VariantName": variant["VariantName"],
        "DeployedImages": [
            {
                "SpecifiedImage": "localcloud-modelserver",
                "ResolvedImage": "localcloud-modelserver",
                "ResolutionTime": when,
            }
        ],
        "CurrentWeight": float(variant.get("InitialVariantWeight", 1.0)),
        "DesiredWeight": float(variant.get("InitialVariantWeight", 1.0)),
    }
    if variant.get("ServerlessConfig"):
        summary["CurrentServerlessConfig"] = variant["ServerlessConfig"]
        summary["DesiredServerlessConfig"] = variant["ServerlessConfig"]
    else:
        summary["CurrentInstanceCount"] = variant.get("InitialInstanceCount", 1)
        summary["DesiredInstanceCount"] = variant.get("InitialInstanceCount", 1)
    return summary
