"""Resources from the template: buckets, tables, topics and queues in moto, and one ``FunctionSpec``
per function with the S3 and EventBridge subscriptions its events declare.

SAM's semantics applied here: Globals.Function merged under each function, layers mounted at /opt,
``EventInvokeConfig`` (retries, OnSuccess/OnFailure destinations) and ``DeadLetterQueue``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcloud.lambda_runner import Destination, FunctionSpec, base_lambda_environment
from localcloud.shared import ACCOUNT_ID
from localcloud.template import ResolvedResource, TemplateResolver

S3_EVENTS_QUEUE = "localcloud-s3-notifications"
# Every SNS topic of the template is subscribed to this queue so the demo and tests can read what
# the pipeline announces (a local stand-in for the e-mail subscription).
NOTIFICATIONS_QUEUE = "localcloud-topic-messages"

ClientFactory = Callable[[str], Any]


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


@dataclass
class FunctionWiring:
    """The template's functions and the events that invoke them."""

    specs: dict[str, FunctionSpec] = field(default_factory=dict)
    s3: list[S3Subscription] = field(default_factory=list)
    eventbridge: list[EventBridgeSubscription] = field(default_factory=list)


# -- resources -------------------------------------------------------------------------------------


def create_resources(resolver: TemplateResolver, client: ClientFactory, region: str) -> None:
    """Create the template's buckets, tables, topics and queues, and the local cloud's two queues."""
    s3, ddb, sns, sqs = (client(s) for s in ("s3", "dynamodb", "sns", "sqs"))
    for res in resolver.of_type("AWS::S3::Bucket"):
        s3.create_bucket(Bucket=res.ref)
        versioning = res.properties.get("VersioningConfiguration", {}).get("Status")
        if versioning:
            s3.put_bucket_versioning(Bucket=res.ref, VersioningConfiguration={"Status": versioning})
    for res in resolver.of_type("AWS::DynamoDB::Table"):
        _create_table(ddb, res)
    for res in resolver.of_type("AWS::Serverless::SimpleTable"):
        key = res.properties.get("PrimaryKey", {"Name": "id", "Type": "String"})
        type_code = {"String": "S", "Number": "N", "Binary": "B"}[key["Type"]]
        ddb.create_table(
            TableName=res.ref,
            KeySchema=[{"AttributeName": key["Name"], "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key["Name"], "AttributeType": type_code}],
            BillingMode="PAY_PER_REQUEST",
        )
    for res in resolver.of_type("AWS::SNS::Topic"):
        sns.create_topic(Name=res.attributes["TopicName"])
    for res in resolver.of_type("AWS::SQS::Queue"):
        attributes = {}
        if str(res.properties.get("FifoQueue", "")).lower() == "true":
            attributes["FifoQueue"] = "true"
        url = sqs.create_queue(QueueName=res.attributes["QueueName"], Attributes=attributes)["QueueUrl"]
        if url != res.ref:  # the template's Refs must be the URLs moto actually serves
            raise RuntimeError(f"queue URL mismatch: template says {res.ref}, moto says {url}")
    sqs.create_queue(QueueName=S3_EVENTS_QUEUE)
    sqs.create_queue(QueueName=NOTIFICATIONS_QUEUE)
    inbox_arn = f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{NOTIFICATIONS_QUEUE}"
    for res in resolver.of_type("AWS::SNS::Topic"):
        sns.subscribe(TopicArn=res.ref, Protocol="sqs", Endpoint=inbox_arn)


def _create_table(ddb: Any, res: ResolvedResource) -> None:
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


# -- functions -------------------------------------------------------------------------------------


def function_wiring(
    resolver: TemplateResolver, template: Path, region: str, endpoint_env: Mapping[str, str]
) -> FunctionWiring:
    """One FunctionSpec per AWS::Serverless::Function, and the subscriptions of its events."""
    template_dir = template.resolve().parent
    globals_fn = resolver.resolve(resolver.globals.get("Function", {}) or {})
    wiring = FunctionWiring()
    for res in resolver.of_type("AWS::Serverless::Function"):
        props = {**globals_fn, **res.properties}
        spec = _function_spec(resolver, res, props, globals_fn, template_dir, region, endpoint_env)
        wiring.specs[spec.name] = spec
        for event_id, event in (props.get("Events", {}) or {}).items():
            _subscribe(wiring, spec, event_id, event)
    return wiring


def _function_spec(
    resolver: TemplateResolver,
    res: ResolvedResource,
    props: dict[str, Any],
    globals_fn: dict[str, Any],
    template_dir: Path,
    region: str,
    endpoint_env: Mapping[str, str],
) -> FunctionSpec:
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
    environment = base_lambda_environment(res.ref, res.attributes["Arn"], memory, timeout, region)
    environment.update(endpoint_env)
    for key, value in env_vars.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if layer_dirs and (text == "/opt" or text.startswith("/opt/")):
            text = str(layer_dirs[0]) + text[len("/opt") :]  # Lambda mounts layers at /opt
        environment[key] = text
    invoke_config = props.get("EventInvokeConfig", {}) or {}
    destinations = invoke_config.get("DestinationConfig", {}) or {}
    dead_letter = props.get("DeadLetterQueue")
    return FunctionSpec(
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


def _subscribe(wiring: FunctionWiring, spec: FunctionSpec, event_id: str, event: Mapping[str, Any]) -> None:
    kind, props = event.get("Type"), event.get("Properties", {}) or {}
    if kind == "S3":
        wanted = props["Events"] if isinstance(props["Events"], list) else [props["Events"]]
        rules = (props.get("Filter", {}) or {}).get("S3Key", {}).get("Rules", [])
        wiring.s3.append(
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
        wiring.eventbridge.append(EventBridgeSubscription(spec.name, event_id, props["Pattern"]))
    else:
        print(
            f"[localcloud] {spec.logical_id}.{event_id}: event type {kind} is not emulated",
            file=sys.stderr,
        )


def _destination(config: Mapping[str, Any] | None) -> Destination | None:
    if not config or not config.get("Destination"):
        return None
    return Destination(str(config["Destination"]))
