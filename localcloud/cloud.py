"""The local cloud: moto (S3, DynamoDB, SNS, SQS, STS), the SageMaker emulator, and the template's
Lambda functions wired to their S3 and EventBridge events. Everything binds to 127.0.0.1.

    with LocalCloud(LocalCloudConfig(template=Path("template.yaml"), state_dir=Path(".localcloud"))) as cloud:
        cloud.client("s3").upload_file(...)   # events flow from here on

S3 notifications are real moto bucket notifications: every S3 event of a function becomes a
QueueConfiguration (same events and prefix/suffix filters, Id = ``<Function>.<Event>``) that sends to
one local queue; a poller thread turns each record into an asynchronous invocation of that function.
So objects written by handlers notify like any other upload, and keys arrive URL-encoded as in AWS.
EventBridge events (the SageMaker emulator's job state changes) are matched against each function's
EventBridgeRule pattern and invoke it asynchronously as well.
Lambda's Invoke API (``localcloud.lambda_api``) is served too, so ``boto3.client("lambda").invoke``
reaches the same functions (the CLI's ``import-url`` and ``redrive`` use it).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import boto3
from botocore.config import Config

from localcloud import moto_patches
from localcloud.containerenv import base_python
from localcloud.lambda_api import LambdaInvokeServer
from localcloud.lambda_runner import (
    Destination,
    FunctionSpec,
    InvocationRecord,
    LambdaRunner,
    base_lambda_environment,
)
from localcloud.patterns import matches_event_pattern
from localcloud.template import ACCOUNT_ID, TemplateResolver, load_template

S3_EVENTS_QUEUE = "localcloud-s3-notifications"
# Every SNS topic of the template is subscribed to this queue so the demo and tests can read what
# the pipeline announces (a local stand-in for the e-mail subscription).
NOTIFICATIONS_QUEUE = "localcloud-topic-messages"
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
MOTO_SERVICES = ("s3", "dynamodb", "sns", "sqs", "sts")
SAGEMAKER_SERVICES = ("sagemaker", "sagemaker_runtime")
REPO_ROOT = Path(__file__).resolve().parent.parent


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


@dataclass
class S3Subscription:
    function: str
    event_id: str
    bucket: str
    events: list[str]
    filter_rules: list[dict[str, str]]

    @property
    def configuration_id(self) -> str:
        return f"{self.function}.{self.event_id}"


@dataclass
class EventBridgeSubscription:
    function: str
    event_id: str
    pattern: dict[str, Any]


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
        self._lambda_api: LambdaInvokeServer | None = None
        self.endpoints: dict[str, str] = {}
        self.runner: LambdaRunner | None = None
        self.resolver: TemplateResolver | None = None
        self.s3_subscriptions: list[S3Subscription] = []
        self.eventbridge_subscriptions: list[EventBridgeSubscription] = []
        self.events_seen: list[dict[str, Any]] = []  # every EventBridge event put, for status/tests
        self.poller_errors: list[str] = []

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
        if self.config.start_sagemaker:
            self._start_sagemaker(moto_url)
        self._create_resources()
        functions = self._function_specs()
        self.runner = LambdaRunner(
            functions,
            log_dir=self.state_dir / "logs",
            send_to_destination=self._send_to_destination,
            retry_delays_s=self.config.retry_delays_s,
            max_concurrency=self.config.max_concurrency,
            on_record=self._on_record,
        )
        self._configure_s3_notifications()
        self._poller = threading.Thread(target=self._poll_s3_events, name="s3-notifications", daemon=True)
        self._poller.start()

    def _start_sagemaker(self, moto_url: str) -> None:
        from localcloud.sagemaker.server import SageMakerServer

        self._sagemaker = SageMakerServer(
            host="127.0.0.1",
            port=self.config.sagemaker_port,
            state_dir=self.state_dir / "sagemaker",
            s3_endpoint_url=moto_url,
            training_python=self.config.training_python or base_python(),
            on_event=self._on_sagemaker_event,
            region=self.config.region,
            on_log=self.config.on_job_log,
        )
        self._sagemaker.start()
        self.endpoints["sagemaker"] = self._sagemaker.url
        self.endpoints["sagemaker_runtime"] = self._sagemaker.url

    def stop(self) -> None:
        self._stop.set()
        if self._poller:
            self._poller.join(timeout=5)
        if self._lambda_api:
            self._lambda_api.stop()
            self._lambda_api = None
        if self.runner:
            self.runner.close()
        if self._sagemaker:
            self._sagemaker.stop()
            self._sagemaker = None
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

    def client(self, service: str) -> Any:
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
            config=Config(retries={"max_attempts": 2, "mode": "standard"}, read_timeout=120),
        )

    def outputs(self) -> dict[str, str]:
        assert self.resolver is not None
        outputs = self.resolver.template.get("Outputs", {}) or {}
        return {name: str(self.resolver.resolve(body["Value"])) for name, body in outputs.items()}

    # -- resources ---------------------------------------------------------------------------------
    def _create_resources(self) -> None:
        assert self.resolver is not None
        s3, ddb, sns, sqs = (self.client(s) for s in ("s3", "dynamodb", "sns", "sqs"))
        for res in self.resolver.of_type("AWS::S3::Bucket"):
            s3.create_bucket(Bucket=res.ref)
            versioning = res.properties.get("VersioningConfiguration", {}).get("Status")
            if versioning:
                s3.put_bucket_versioning(Bucket=res.ref, VersioningConfiguration={"Status": versioning})
        for res in self.resolver.of_type("AWS::DynamoDB::Table"):
            props = res.properties
            kwargs: dict[str, Any] = {
                "TableName": res.ref,
                "KeySchema": props["KeySchema"],
                "AttributeDefinitions": props["AttributeDefinitions"],
                "BillingMode": props.get("BillingMode", "PROVISIONED"),
            }
            if kwargs["BillingMode"] == "PROVISIONED":
                kwargs["ProvisionedThroughput"] = {
                    k: int(v)
                    for k, v in props.get(
                        "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
                    ).items()
                }
            for index_kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
                if props.get(index_kind):
                    kwargs[index_kind] = props[index_kind]
            ddb.create_table(**kwargs)
            ttl = props.get("TimeToLiveSpecification")
            if ttl and str(ttl.get("Enabled")).lower() == "true":
                ddb.update_time_to_live(
                    TableName=res.ref,
                    TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
                )
        for res in self.resolver.of_type("AWS::Serverless::SimpleTable"):
            key = res.properties.get("PrimaryKey", {"Name": "id", "Type": "String"})
            type_code = {"String": "S", "Number": "N", "Binary": "B"}[key["Type"]]
            ddb.create_table(
                TableName=res.ref,
                KeySchema=[{"AttributeName": key["Name"], "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": key["Name"], "AttributeType": type_code}],
                BillingMode="PAY_PER_REQUEST",
            )
        for res in self.resolver.of_type("AWS::SNS::Topic"):
            sns.create_topic(Name=res.attributes["TopicName"])
        for res in self.resolver.of_type("AWS::SQS::Queue"):
            attributes = {}
            if str(res.properties.get("FifoQueue", "")).lower() == "true":
                attributes["FifoQueue"] = "true"
            url = sqs.create_queue(QueueName=res.attributes["QueueName"], Attributes=attributes)["QueueUrl"]
            if url != res.ref:  # the template's Refs must be the URLs moto actually serves
                raise RuntimeError(f"queue URL mismatch: template says {res.ref}, moto says {url}")
        sqs.create_queue(QueueName=S3_EVENTS_QUEUE)
        sqs.create_queue(QueueName=NOTIFICATIONS_QUEUE)
        inbox_arn = f"arn:aws:sqs:{self.config.region}:{ACCOUNT_ID}:{NOTIFICATIONS_QUEUE}"
        for res in self.resolver.of_type("AWS::SNS::Topic"):
            sns.subscribe(TopicArn=res.ref, Protocol="sqs", Endpoint=inbox_arn)

    # -- functions ---------------------------------------------------------------------------------
    def _function_specs(self) -> dict[str, FunctionSpec]:
        resolver = self.resolver
        assert resolver is not None
        template_dir = self.config.template.resolve().parent
        globals_fn = resolver.resolve(resolver.globals.get("Function", {}) or {})
        specs: dict[str, FunctionSpec] = {}
        for res in resolver.of_type("AWS::Serverless::Function"):
            props = {**globals_fn, **res.properties}
            env_vars = {
                **(globals_fn.get("Environment", {}) or {}).get("Variables", {}),
                **(res.properties.get("Environment", {}) or {}).get("Variables", {}),
            }
            layer_dirs = []
            for layer_arn in props.get("Layers", []) or []:
                layer = resolver.find_by_arn_or_ref(str(layer_arn))
                if layer is not None and "ContentUri" in layer.properties:
                    layer_dirs.append((template_dir / str(layer.properties["ContentUri"])).resolve())
            timeout = float(props.get("Timeout", 3))
            memory = int(props.get("MemorySize", 128))
            environment = base_lambda_environment(
                res.ref, res.attributes["Arn"], memory, timeout, self.config.region
            )
            environment.update(self._runtime_endpoint_env())
            for key, value in env_vars.items():
                text = str(value).lower() if isinstance(value, bool) else str(value)
                if layer_dirs and (text == "/opt" or text.startswith("/opt/")):
                    text = str(layer_dirs[0]) + text[len("/opt") :]  # Lambda mounts layers at /opt
                environment[key] = text
            invoke_config = props.get("EventInvokeConfig", {}) or {}
            destinations = invoke_config.get("DestinationConfig", {}) or {}
            dead_letter = props.get("DeadLetterQueue")
            spec = FunctionSpec(
                logical_id=res.logical_id,
                name=res.ref,
                arn=res.attributes["Arn"],
                handler=str(props["Handler"]),
                code_dir=(template_dir / str(props.get("CodeUri", "."))).resolve(),
                environment=environment,
                timeout_s=timeout,
                memory_mb=memory,
                extra_sys_path=[d / "python" for d in layer_dirs if (d / "python").is_dir()],
                max_retries=int(invoke_config.get("MaximumRetryAttempts", 2)),
                on_failure=_destination(destinations.get("OnFailure")),
                on_success=_destination(destinations.get("OnSuccess")),
                dead_letter=Destination(str(dead_letter["TargetArn"])) if dead_letter else None,
            )
            specs[spec.name] = spec
            for event_id, event in (props.get("Events", {}) or {}).items():
                self._subscribe(spec, event_id, event)
        return specs

    def _runtime_endpoint_env(self) -> dict[str, str]:
        env = self.environment()
        return {k: v for k, v in env.items() if k.startswith("AWS_ENDPOINT_URL") or k in DUMMY_CREDENTIALS}

    def _subscribe(self, spec: FunctionSpec, event_id: str, event: Mapping[str, Any]) -> None:
        kind, props = event.get("Type"), event.get("Properties", {}) or {}
        if kind == "S3":
            wanted = props["Events"] if isinstance(props["Events"], list) else [props["Events"]]
            rules = (props.get("Filter", {}) or {}).get("S3Key", {}).get("Rules", [])
            self.s3_subscriptions.append(
                S3Subscription(
                    function=spec.name,
                    event_id=event_id,
                    bucket=str(props["Bucket"]),
                    events=[str(e) for e in wanted],
                    # S3 accepts Prefix/prefix; moto compares names exactly, so normalise.
                    filter_rules=[{"Name": r["Name"].lower(), "Value": str(r["Value"])} for r in rules],
                )
            )
        elif kind in ("EventBridgeRule", "CloudWatchEvent"):
            self.eventbridge_subscriptions.append(
                EventBridgeSubscription(spec.name, event_id, props["Pattern"])
            )
        else:
            print(
                f"[localcloud] {spec.logical_id}.{event_id}: event type {kind} is not emulated",
                file=sys.stderr,
            )

    # -- S3 notifications --------------------------------------------------------------------------
    def _configure_s3_notifications(self) -> None:
        s3 = self.client("s3")
        queue_arn = f"arn:aws:sqs:{self.config.region}:{ACCOUNT_ID}:{S3_EVENTS_QUEUE}"
        by_bucket: dict[str, list[S3Subscription]] = {}
        for sub in self.s3_subscriptions:
            by_bucket.setdefault(sub.bucket, []).append(sub)
        for bucket, subs in by_bucket.items():
            configurations = []
            for sub in subs:
                configuration: dict[str, Any] = {
                    "Id": sub.configuration_id,
                    "QueueArn": queue_arn,
                    "Events": sub.events,
                }
                if sub.filter_rules:
                    configuration["Filter"] = {"Key": {"FilterRules": sub.filter_rules}}
                configurations.append(configuration)
            s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"QueueConfigurations": configurations}
            )

    def _poll_s3_events(self) -> None:
        sqs = self.client("sqs")
        queue_url = sqs.get_queue_url(QueueName=S3_EVENTS_QUEUE)["QueueUrl"]
        by_configuration = {sub.configuration_id: sub for sub in self.s3_subscriptions}
        while not self._stop.is_set():
            try:
                reply = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            except Exception as error:  # the server is going down, or a transient hiccup
                if not self._stop.is_set():
                    # Said at once and kept for the demo's failure summary: a poller that cannot
                    # read its queue means uploads that trigger nothing.
                    print(f"[localcloud] S3 event poller: {type(error).__name__}: {error}", file=sys.stderr)
                    self.poller_errors.append(f"{type(error).__name__}: {error}")
                    time.sleep(0.5)
                continue
            for message in reply.get("Messages", []):
                body = json.loads(message["Body"])
                for record in body.get("Records", []):  # s3:TestEvent messages have no Records
                    sub = by_configuration.get(record.get("s3", {}).get("configurationId"))
                    if sub is None or self.runner is None:
                        continue
                    self.runner.invoke_async(sub.function, {"Records": [_complete_s3_record(record)]})
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    def wait_s3_events_delivered(self, timeout_s: float) -> bool:
        """Wait until every S3 notification sent so far has been turned into an invocation and every
        invocation has finished. moto sends a notification inside the S3 request itself, so after an
        upload returns this answers "what did that upload trigger" without guessing a delay."""
        sqs = self.client("sqs")
        queue_url = sqs.get_queue_url(QueueName=S3_EVENTS_QUEUE)["QueueUrl"]
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]

        def queue_empty() -> bool:
            attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
            return not any(int(attributes.get(name, 0)) for name in names)

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            # The poller invokes (pending + 1) before it deletes a message, so "queue empty, then
            # runner idle, then queue still empty" cannot miss an event, including events sent by
            # objects the invocations themselves wrote.
            if (
                queue_empty()
                and (self.runner is None or self.runner.wait_idle(max(0.0, deadline - time.monotonic())))
                and queue_empty()
            ):
                return True
            time.sleep(0.05)
        return False

    def read_notifications(self) -> list[dict[str, str]]:
        """SNS messages published since the last call: ``{"topic", "subject", "message"}``."""
        sqs = self.client("sqs")
        url = sqs.get_queue_url(QueueName=NOTIFICATIONS_QUEUE)["QueueUrl"]
        found: list[dict[str, str]] = []
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                envelope = json.loads(message["Body"])
                found.append(
                    {
                        "topic": envelope.get("TopicArn", ""),
                        "subject": envelope.get("Subject") or "",
                        "message": envelope.get("Message", ""),
                    }
                )
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    # -- EventBridge -------------------------------------------------------------------------------
    def _on_sagemaker_event(self, event: dict[str, Any]) -> None:
        self.put_event(event)

    def put_event(self, event: Mapping[str, Any]) -> list[str]:
        """Route one EventBridge event to every function whose rule pattern matches it."""
        full = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "account": ACCOUNT_ID,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.config.region,
            "resources": [],
            **event,
        }
        self.events_seen.append(full)
        targets = [
            sub.function for sub in self.eventbridge_subscriptions if matches_event_pattern(sub.pattern, full)
        ]
        if self.runner is not None and not self._stop.is_set():  # shutting down: jobs report Stopped
            for function in targets:
                self.runner.invoke_async(function, full)
        return targets

    # -- destinations ------------------------------------------------------------------------------
    def _send_to_destination(self, destination: Destination, message: Any) -> None:
        body = json.dumps(message, default=str)
        if destination.service == "sqs":
            sqs = self.client("sqs")
            url = sqs.get_queue_url(QueueName=destination.arn.split(":")[-1])["QueueUrl"]
            sqs.send_message(QueueUrl=url, MessageBody=body)
        elif destination.service == "sns":
            self.client("sns").publish(TopicArn=destination.arn, Message=body)
        elif destination.service == "lambda" and self.runner is not None:
            self.runner.invoke_async(destination.arn, message)
        else:
            raise ValueError(f"destination {destination.arn} is not emulated")


def _destination(config: Mapping[str, Any] | None) -> Destination | None:
    if not config or not config.get("Destination"):
        return None
    return Destination(str(config["Destination"]))


def _complete_s3_record(record: dict[str, Any]) -> dict[str, Any]:
    """Add the fields AWS puts in an S3 event record that moto leaves out."""
    record = json.loads(json.dumps(record))
    # moto encodes "/" as %2F; S3 keeps slashes and encodes the rest like a form value.
    key = unquote_plus(record["s3"]["object"]["key"])
    record["s3"]["object"]["key"] = quote_plus(key, safe="/")
    request_id = uuid.uuid4().hex[:16].upper()
    record.setdefault("userIdentity", {"principalId": "AWS:LOCALCLOUD"})
    record.setdefault("requestParameters", {"sourceIPAddress": "127.0.0.1"})
    record.setdefault("responseElements", {"x-amz-request-id": request_id, "x-amz-id-2": uuid.uuid4().hex})
    record["s3"]["bucket"].setdefault("ownerIdentity", {"principalId": "LOCALCLOUD"})
    record["s3"]["object"].setdefault("sequencer", f"{time.time_ns():016X}")
    return record
