"""Resources from the transformed template: buckets, tables, topics and queues in moto, and one
``FunctionSpec`` per ``AWS::Lambda::Function`` with the S3 and EventBridge subscriptions that invoke it.

Everything is read from the CloudFormation the SAM translator generates (localcloud.stack.template), not
from the SAM shorthand: the bucket ``NotificationConfiguration`` for S3 events, ``AWS::Events::Rule``
patterns and targets, ``AWS::Lambda::EventInvokeConfig`` (retries, OnSuccess/OnFailure destinations),
``DeadLetterConfig``, and ``AWS::Lambda::LayerVersion`` folders mounted at /opt. Targets name a
function, a version or an alias (AutoPublishAlias); all run the function's code on disk.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcloud.lambdas.runner import Destination, FunctionSpec, base_lambda_environment
from localcloud.shared import ACCOUNT_ID
from localcloud.stack.sam import code_folder
from localcloud.stack.template import ResolvedResource, TemplateResolver

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
class ScheduleSubscription:
    """An AWS::Events::Rule with a ScheduleExpression and the function it invokes."""

    function: str
    rule_arn: str
    expression: str


@dataclass
class FunctionWiring:
    """The template's functions and the events that invoke them."""

    specs: dict[str, FunctionSpec] = field(default_factory=dict)
    s3: list[S3Subscription] = field(default_factory=list)
    eventbridge: list[EventBridgeSubscription] = field(default_factory=list)
    schedules: list[ScheduleSubscription] = field(default_factory=list)


# -- resources -------------------------------------------------------------------------------------


def create_resources(resolver: TemplateResolver, client: ClientFactory, region: str) -> None:
    """Create the template's buckets, tables, topics and queues, and the local cloud's two queues.

    Not applied, since nothing local reads or enforces them: bucket policies, LoggingConfiguration
    (no server access logs are written; the log bucket is created like any other), lifecycle rules,
    encryption (BucketEncryption, the topic's KmsMasterKeyId; the KMS key and IAM resources are
    resolved to names only).
    """
    s3, ddb, sns, sqs = (client(s) for s in ("s3", "dynamodb", "sns", "sqs"))
    for res in resolver.of_type("AWS::S3::Bucket"):
        s3.create_bucket(Bucket=res.ref)
        versioning = res.properties.get("VersioningConfiguration", {}).get("Status")
        if versioning:
            s3.put_bucket_versioning(Bucket=res.ref, VersioningConfiguration={"Status": versioning})
    for res in resolver.of_type("AWS::DynamoDB::Table"):
        _create_table(ddb, res)
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
    """One FunctionSpec per AWS::Lambda::Function, and the S3 and EventBridge subscriptions to it."""
    template_dir = template.resolve().parent
    invoke_configs = {
        str(res.properties["FunctionName"]): res.properties
        for res in resolver.of_type("AWS::Lambda::EventInvokeConfig")
    }
    wiring = FunctionWiring()
    for res in resolver.of_type("AWS::Lambda::Function"):
        config = invoke_configs.get(res.ref, {})
        spec = _function_spec(resolver, res, config, template_dir, region, endpoint_env)
        wiring.specs[spec.name] = spec
    targets = _function_targets(resolver)
    wiring.s3 = _s3_subscriptions(resolver, targets)
    wiring.eventbridge = _eventbridge_subscriptions(resolver, targets)
    wiring.schedules = _schedule_subscriptions(resolver, targets)
    return wiring


def _function_targets(resolver: TemplateResolver) -> dict[str, str]:
    """Function name by every name or ARN that invokes it: its own, its versions' and aliases'."""
    targets: dict[str, str] = {}
    for res in resolver.of_type("AWS::Lambda::Function"):
        targets[res.ref] = targets[res.attributes["Arn"]] = res.ref
    for res in resolver.of_type("AWS::Lambda::Alias", "AWS::Lambda::Version"):
        targets[res.ref] = str(res.properties["FunctionName"])
    return targets


def _function_spec(
    resolver: TemplateResolver,
    res: ResolvedResource,
    invoke_config: Mapping[str, Any],
    template_dir: Path,
    region: str,
    endpoint_env: Mapping[str, str],
) -> FunctionSpec:
    props = res.properties
    layer_dirs = []
    for layer_arn in props.get("Layers", []) or []:
        layer = resolver.find_by_arn_or_ref(str(layer_arn))
        folder = code_folder(layer.properties.get("Content")) if layer is not None else None
        if folder is not None:
            layer_dirs.append((template_dir / folder).resolve())
    timeout = float(props.get("Timeout", 3))
    memory = int(props.get("MemorySize", 128))
    environment = base_lambda_environment(res.ref, res.attributes["Arn"], memory, timeout, region)
    environment.update(endpoint_env)
    for key, value in ((props.get("Environment", {}) or {}).get("Variables", {}) or {}).items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        environment[key] = _opt_path(text, layer_dirs)
    destinations = invoke_config.get("DestinationConfig", {}) or {}
    dead_letter = (props.get("DeadLetterConfig", {}) or {}).get("TargetArn")
    folder = code_folder(props.get("Code"))
    if folder is None:
        raise ValueError(f"{res.logical_id}: Code is not a local folder (CodeUri), cannot run it locally")
    reserved = props.get("ReservedConcurrentExecutions")
    if reserved is not None and int(reserved) < 1:
        # AWS throttles every invocation of a function reserved at 0 (it is switched off).
        raise ValueError(f"{res.logical_id}: ReservedConcurrentExecutions {reserved} is not emulated")
    return FunctionSpec(
        logical_id=res.logical_id,
        name=res.ref,
        arn=res.attributes["Arn"],
        handler=str(props["Handler"]),
        code_dir=(template_dir / folder).resolve(),
        environment=environment,
        timeout_s=timeout,
        memory_mb=memory,
        extra_sys_path=[d / "python" for d in layer_dirs if (d / "python").is_dir()],
        max_retries=int(invoke_config.get("MaximumRetryAttempts", 2)),  # Lambda's default: 2
        on_failure=_destination(destinations.get("OnFailure")),
        on_success=_destination(destinations.get("OnSuccess")),
        dead_letter=Destination(str(dead_letter)) if dead_letter else None,
        reserved_concurrency=int(reserved) if reserved is not None else None,
    )


def _opt_path(text: str, layer_dirs: list[Path]) -> str:
    """A path under /opt mapped into the layer folder that provides it. Lambda extracts the layers into
    /opt in order, a later layer overwriting an earlier one, so the last layer holding the path wins
    (for /opt itself: the last layer)."""
    if not layer_dirs or not (text == "/opt" or text.startswith("/opt/")):
        return text
    rest = text[len("/opt") :].lstrip("/")
    holders = [d for d in layer_dirs if (d / rest).exists()] or layer_dirs
    return str(holders[-1] / rest) if rest else str(holders[-1])


def _s3_subscriptions(resolver: TemplateResolver, targets: Mapping[str, str]) -> list[S3Subscription]:
    """The LambdaConfigurations of each bucket's NotificationConfiguration (SAM writes them there)."""
    found = []
    for bucket in resolver.of_type("AWS::S3::Bucket"):
        notification = bucket.properties.get("NotificationConfiguration", {}) or {}
        for index, config in enumerate(notification.get("LambdaConfigurations", []) or []):
            function = targets.get(str(config["Function"]))
            if function is None:
                _not_emulated(f"{bucket.logical_id}: notification target {config['Function']}")
                continue
            rules = (config.get("Filter", {}) or {}).get("S3Key", {}).get("Rules", [])
            found.append(
                S3Subscription(
                    function=function,
                    event_id=f"{bucket.logical_id}{index}",
                    bucket=bucket.ref,
                    events=[str(config["Event"])],
                    # S3 accepts Prefix/prefix; moto compares names exactly, so normalise.
                    filter_rules=[{"Name": r["Name"].lower(), "Value": str(r["Value"])} for r in rules],
                )
            )
    return found


def _eventbridge_subscriptions(
    resolver: TemplateResolver, targets: Mapping[str, str]
) -> list[EventBridgeSubscription]:
    """Each enabled AWS::Events::Rule with an EventPattern, once per Lambda target."""
    found = []
    for rule in resolver.of_type("AWS::Events::Rule"):
        props = rule.properties
        if "EventPattern" not in props or str(props.get("State", "ENABLED")) != "ENABLED":
            continue
        for target in props.get("Targets", []) or []:
            function = targets.get(str(target["Arn"]))
            if function is None:
                _not_emulated(f"{rule.logical_id}: rule target {target['Arn']}")
                continue
            found.append(EventBridgeSubscription(function, rule.logical_id, props["EventPattern"]))
    return found


def _schedule_subscriptions(
    resolver: TemplateResolver, targets: Mapping[str, str]
) -> list[ScheduleSubscription]:
    """Each enabled AWS::Events::Rule with a ScheduleExpression, once per Lambda target (the local
    cloud fires them on its own period, localcloud.events.routing.EventRouter.run_schedules)."""
    found = []
    for rule in resolver.of_type("AWS::Events::Rule"):
        props = rule.properties
        if "ScheduleExpression" not in props or str(props.get("State", "ENABLED")) != "ENABLED":
            continue
        for target in props.get("Targets", []) or []:
            function = targets.get(str(target["Arn"]))
            if function is None:
                _not_emulated(f"{rule.logical_id}: schedule target {target['Arn']}")
                continue
            found.append(
                ScheduleSubscription(function, rule.attributes["Arn"], str(props["ScheduleExpression"]))
            )
    return found


def _not_emulated(what: str) -> None:
    print(f"[localcloud] {what} is not emulated", file=sys.stderr)


def _destination(config: Mapping[str, Any] | None) -> Destination | None:
    if not config or not config.get("Destination"):
        return None
    return Destination(str(config["Destination"]))
