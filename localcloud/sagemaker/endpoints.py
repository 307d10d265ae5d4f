"""Endpoints: CreateEndpoint, UpdateEndpoint, DescribeEndpoint, ListEndpoints, DeleteEndpoint.

Each endpoint is kept as the dict its Describe call returns, guarded by the context's lock. Creating
or updating an endpoint starts a model server (``runners.endpoint.ModelServerProcess``) in its own
thread; an update switches traffic only once the new server is ready, then drains the old one, and
rolls back (the old config keeps serving) when the new one fails, as SageMaker does. Models and
endpoint configs are their own parts (models.py, endpoint_configs.py); InvokeEndpoint is
invocations.py.
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

from localcloud.logs.names import endpoint_group, endpoint_instance_id, endpoint_stream
from localcloud.logs.shipper import open_stream
from localcloud.sagemaker import paging
from localcloud.sagemaker.endpoint_configs import EndpointConfigs, is_serverless
from localcloud.sagemaker.exceptions import ValidationException
from localcloud.sagemaker.models import Models, serving_container
from localcloud.sagemaker.registry import BackendContext
from localcloud.sagemaker.runners.endpoint import ModelServerProcess, ModelServerStartError, serving_python
from localcloud.sagemaker.runners.job_files import parse_s3_uri

logger = logging.getLogger("localcloud.sagemaker")


@dataclass
class Endpoint:
    name: str
    desc: dict[str, Any]
    server: ModelServerProcess | None = None
    generation: int = 0


class Endpoints:
    def __init__(self, context: BackendContext, models: Models, configs: EndpointConfigs) -> None:
        self.context = context
        self.models = models
        self.configs = configs
        self.endpoints: dict[str, Endpoint] = {}

    def create_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        arn = self.context.arn("endpoint", name)
        now = time.time()
        with self.context.lock:
            config = self.configs.get(params["EndpointConfigName"])
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
            config = self.configs.get(params["EndpointConfigName"])
            status = endpoint.desc["EndpointStatus"]
            if status != "InService":
                raise ValidationException(
                    f'Cannot update in-progress endpoint "{endpoint.desc["EndpointArn"]}".'
                )
            if self.configs.serverless(endpoint.desc["EndpointConfigName"]) != is_serverless(config):
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

    def _emit_state(self, snapshot: dict[str, Any]) -> None:
        """An endpoint state-change event, unless the endpoint is serverless and the emulator plays an
        account where those are not sent (BackendContext.serverless_endpoint_events): AWS documents
        the events for real-time endpoints and says nothing of serverless ones."""
        with self.context.lock:
            serverless = self.configs.serverless(snapshot["EndpointConfigName"])
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
        config = self.configs.configs.get(desc["EndpointConfigName"])
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
                model = copy.deepcopy(self.models.models.get(variant["ModelName"]))
            if model is None:
                raise ModelServerStartError(f"model {variant['ModelName']} was deleted")
            model_dir = self._fetch_model(model, work_dir)
            environment = dict(serving_container(model).get("Environment") or {})
            environment["SAGEMAKER_ENDPOINT_NAME"] = endpoint.name
            log_path = work_dir / "server.log"
            # Serving runs in the base env (the inference image), or in an overlay over it holding the
            # model's code/requirements.txt; never in a training job's overlay.
            python = serving_python(model_dir, log_path)
            cloudwatch = open_stream(
                self.context.logs,
                endpoint_group(endpoint.name),
                endpoint_stream(variant["VariantName"], endpoint_instance_id()),
            )
            server = ModelServerProcess(
                endpoint.name, model_dir, environment, log_path, python=python, cloudwatch=cloudwatch
            )
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
        container = serving_container(model)
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

    def servers(self) -> list[ModelServerProcess]:
        with self.context.lock:
            return [endpoint.server for endpoint in self.endpoints.values() if endpoint.server]


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
