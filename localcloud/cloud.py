"""The local cloud: moto (S3, DynamoDB, SNS, SQS, STS, CloudWatch Logs), the SageMaker emulator, and
the template's Lambda functions wired to their S3 and EventBridge events. Everything binds to 127.0.0.1.

    with LocalCloud(LocalCloudConfig(template=Path("template.yaml"), state_dir=Path(".localcloud"))) as cloud:
        cloud.client("s3").upload_file(...)   # events flow from here on

Resources and functions come from the template (``localcloud.stack.resources``); S3 notifications,
EventBridge events and destinations are routed by ``localcloud.events.routing``.
Training jobs, endpoints and functions write their output to CloudWatch Logs in moto, where AWS puts
it (``localcloud.logs``). Lambda's Invoke API (``localcloud.lambdas.invoke_api``) is served too, so
``boto3.client("lambda").invoke`` reaches the same functions (the CLI's ``import-url`` and ``redrive``
use it).
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from localcloud.environment.containerenv import REPO_ROOT, base_python
from localcloud.events import moto_patches
from localcloud.events.routing import EventRouter
from localcloud.faults.s3_proxy import S3FaultProxy
from localcloud.faults.spec import FaultInjector, FaultSpec
from localcloud.iam.enforcement import IamEnforcement
from localcloud.iam.roles import iam_enforced_from_env
from localcloud.lambdas.invoke_api import LambdaInvokeServer
from localcloud.lambdas.runner import InvocationRecord, LambdaRunner
from localcloud.logs import moto_fixes as logs_moto_fixes
from localcloud.logs.shipper import CLIENT_CONFIG as SHIPPER_CLIENT_CONFIG
from localcloud.logs.shipper import LogShipper
from localcloud.stack.resources import (
    EventBridgeSubscription,
    S3Subscription,
    create_resources,
    function_wiring,
)
from localcloud.stack.template import TemplateResolver, load_template

DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
# moto's server answers every service it implements on one port (it routes by the request's signing
# name); these are the ones the local cloud names an endpoint for (AWS_ENDPOINT_URL_<SERVICE>).
MOTO_SERVICES = ("s3", "dynamodb", "sns", "sqs", "sts", "logs")


@dataclass
class LocalCloudConfig:
    template: Path = REPO_ROOT / "template.yaml"
    state_dir: Path = REPO_ROOT / ".localcloud"
    stack_name: str = "dogbreed-local"
    region: str = "us-east-1"
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    training_python: Path | None = None  # default: containerenv.base_python() (the image's interpreter)
    retry_delays_s: tuple[float, ...] = (1.0, 2.0)
    max_concurrency: int = 4
    start_sagemaker: bool = True
    moto_port: int = 0
    sagemaker_port: int = 0
    on_job_log: Callable[[str, str], None] | None = None  # (job name, log line) from the emulator
    faults: FaultSpec | None = None  # localcloud.faults.spec; None: the spec in LOCALCLOUD_FAULTS, if any
    # IAM enforced (localcloud.iam): each function calls as its role; LOCALCLOUD_IAM=off: unchecked.
    iam: bool = field(default_factory=iam_enforced_from_env)
    # Scheduled rules (the endpoint reconcile's rate(1 minute)) fire this often locally; 0: never.
    schedule_period_s: float = field(
        default_factory=lambda: float(os.environ.get("LOCALCLOUD_SCHEDULE_PERIOD_S", "3"))
    )


class LocalCloud:
    def __init__(
        self, config: LocalCloudConfig, *, on_record: Callable[[InvocationRecord], None] | None = None
    ):
        self.config = config
        self.state_dir = config.state_dir.resolve()
        self._on_record = on_record
        self._moto: Any = None
        self._sagemaker: Any = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._scheduler: threading.Thread | None = None
        self._lambda_api: LambdaInvokeServer | None = None
        self._s3_fault_proxy: S3FaultProxy | None = None
        self.log_shipper: LogShipper | None = None
        self.iam: IamEnforcement | None = None
        spec = config.faults or FaultSpec.from_env()
        self.faults: FaultInjector | None = FaultInjector(spec) if spec else None
        self.endpoints: dict[str, str] = {}
        self.runner: LambdaRunner | None = None
        self.resolver: TemplateResolver | None = None
        self.router = EventRouter(config.region, self.client, lambda: self.runner, self._stop)
        self.router.faults = self.faults

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> LocalCloud:
        try:
            self.start()
        except BaseException:
            self.stop()  # a half-started cloud must not leave servers behind
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise

        (self.state_dir / "logs").mkdir(parents=True, exist_ok=True)
        moto_patches.apply()  # one CompleteMultipartUpload event per multipart object, as in AWS
        logs_moto_fixes.apply()  # FilterLogEvents honours logStreamNamePrefix, as in AWS
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=self.config.moto_port, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        moto_url = f"http://{host}:{port}"
        # moto keeps its backends per process, not per server: start from an empty account so a
        # second LocalCloud in one process (tests, tools) does not see the previous one's resources.
        urllib.request.urlopen(
            urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"), timeout=10
        )
        self.endpoints = {service: moto_url for service in MOTO_SERVICES}
        self.log_shipper = LogShipper(lambda: self.client("logs", config=SHIPPER_CLIENT_CONFIG))
        if self.faults and self.faults.spec.s3_faults:
            # Only the functions' S3 calls go through it (_runtime_endpoint_env).
            self._s3_fault_proxy = S3FaultProxy(moto_url, self.faults).start()
        # Lambda's Invoke API over the runner (created below; the server looks it up per request).
        self._lambda_api = LambdaInvokeServer(lambda: self.runner)
        self._lambda_api.start()
        self.endpoints["lambda"] = self._lambda_api.url

        template = load_template(self.config.template)
        self.resolver = TemplateResolver(
            template,
            stack_name=self.config.stack_name,
            region=self.config.region,
            parameter_overrides=self.config.parameter_overrides,
            queue_url_base=moto_url,
        )
        if self.config.iam:
            functions_s3 = self._s3_fault_proxy.url if self._s3_fault_proxy else moto_url
            self.iam = IamEnforcement(self.resolver, moto_url, functions_s3).start()
            self.endpoints["iam"] = self.iam.api.url  # SimulatePrincipalPolicy over the roles' policies
            self.iam.create_roles(self.client("iam"))
        if self.config.start_sagemaker:
            self._start_sagemaker(moto_url)
        create_resources(self.resolver, self.client, self.config.region)
        wiring = function_wiring(
            self.resolver, self.config.template, self.config.region, self._runtime_endpoint_env()
        )
        if self.iam:
            self.iam.assign_roles(wiring.specs)
        self.router.s3_subscriptions = wiring.s3
        self.router.eventbridge_subscriptions = wiring.eventbridge
        self.router.schedule_subscriptions = wiring.schedules
        self.runner = LambdaRunner(
            wiring.specs,
            log_dir=self.state_dir / "logs",
            send_to_destination=self.router.send_to_destination,
            retry_delays_s=self.config.retry_delays_s,
            max_concurrency=self.config.max_concurrency,
            on_record=self._on_record,
            faults=self.faults,
            log_shipper=self.log_shipper,
        )
        self.router.configure_s3_notifications()
        self._poller = threading.Thread(
            target=self.router.poll_s3_events, name="s3-notifications", daemon=True
        )
        self._poller.start()
        if wiring.schedules and self.config.schedule_period_s > 0:
            self._scheduler = threading.Thread(
                target=self.router.run_schedules,
                args=(self.config.schedule_period_s,),
                name="schedules",
                daemon=True,
            )
            self._scheduler.start()

    def _start_sagemaker(self, moto_url: str) -> None:
        from localcloud.sagemaker.server import SageMakerServer

        self._sagemaker = SageMakerServer(
            host="127.0.0.1",
            port=self.config.sagemaker_port,
            state_dir=self.state_dir / "sagemaker",
            s3_endpoint_url=self.iam.jobs.url if self.iam else moto_url,
            iam=self.iam.jobs if self.iam else None,
            training_python=self.config.training_python or base_python(),
            on_event=self.router.on_sagemaker_event,
            region=self.config.region,
            on_log=self.config.on_job_log,
            faults=self.faults,
            logs=self.log_shipper,
        )
        self._sagemaker.start()
        self.endpoints["sagemaker"] = self._sagemaker.url
        self.endpoints["sagemaker_runtime"] = self._sagemaker.url
        if self.iam:
            self.iam.functions.route("sagemaker", self._sagemaker.url)

    def stop(self) -> None:
        self._stop.set()
        if self._poller:
            self._poller.join(timeout=5)
        if self._scheduler:
            self._scheduler.join(timeout=5)
        if self._lambda_api:
            self._lambda_api.stop()
            self._lambda_api = None
        if self.runner:
            self.runner.close()
        if self._sagemaker:
            self._sagemaker.stop()
            self._sagemaker = None
        if self.iam:
            self.iam.stop()
            self.iam = None
        if self._s3_fault_proxy:
            self._s3_fault_proxy.stop()
            self._s3_fault_proxy = None
        if self.log_shipper:  # after the runners: their last lines, before moto goes
            self.log_shipper.close()
            self.log_shipper = None
        if self._moto:
            self._moto.stop()
            self._moto = None

    # -- clients and environment -------------------------------------------------------------------
    def environment(self) -> dict[str, str]:
        """The variables that point boto3 (and the AWS CLI) at this local cloud."""
        env = dict(DUMMY_CREDENTIALS)
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = self.config.region
        # The catch-all keeps any service we do not emulate away from AWS as well.
        env["AWS_ENDPOINT_URL"] = self.endpoints["s3"]
        for service, url in self.endpoints.items():
            env[f"AWS_ENDPOINT_URL_{service.upper()}"] = url
        return env

    def client(self, service: str, config: Config | None = None) -> Any:
        key = service.replace("-", "_")
        if key not in self.endpoints:
            raise KeyError(f"{service} is not served by the local cloud")
        return boto3.client(
            service,
            endpoint_url=self.endpoints[key],
            region_name=self.config.region,
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
            config=config or Config(retries={"max_attempts": 2, "mode": "standard"}, read_timeout=120),
        )

    def outputs(self) -> dict[str, str]:
        assert self.resolver is not None
        outputs = self.resolver.template.get("Outputs", {}) or {}
        return {name: str(self.resolver.resolve(body["Value"])) for name, body in outputs.items()}

    def function_names(self) -> dict[str, str]:
        """The template's functions: logical id -> function name (the log group's suffix)."""
        assert self.runner is not None
        return {spec.logical_id: spec.name for spec in self.runner.functions.values()}

    def _runtime_endpoint_env(self) -> dict[str, str]:
        env = self.environment()
        env = {k: v for k, v in env.items() if k.startswith("AWS_ENDPOINT_URL") or k in DUMMY_CREDENTIALS}
        if self._s3_fault_proxy:
            env["AWS_ENDPOINT_URL_S3"] = self._s3_fault_proxy.url
        if self.faults:
            env.update(self.faults.function_environment())
        return self.iam.function_endpoints(env) if self.iam else env

    # -- routing (localcloud.events.routing) --------------------------------------------------------------
    @property
    def s3_subscriptions(self) -> list[S3Subscription]:
        return self.router.s3_subscriptions

    @property
    def eventbridge_subscriptions(self) -> list[EventBridgeSubscription]:
        return self.router.eventbridge_subscriptions

    @property
    def poller_errors(self) -> list[str]:
        return self.router.poller_errors

    def put_event(self, event: Mapping[str, Any]) -> list[str]:
        """Route one EventBridge event to every function whose rule pattern matches it."""
        return self.router.put_event(event)

    def wait_s3_events_delivered(self, timeout_s: float) -> bool:
        """Wait until every S3 notification sent so far has been delivered and every invocation ended."""
        return self.router.wait_s3_events_delivered(timeout_s)

    def read_notifications(self) -> list[dict[str, str]]:
        """SNS messages published since the last call: ``{"topic", "subject", "message"}``."""
        return self.router.read_notifications()
