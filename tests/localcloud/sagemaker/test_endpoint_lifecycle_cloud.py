"""The emulator's endpoint events have AWS's shape, and the pipeline's lifecycle reacts to them.

A model whose artifact does not exist makes CreateEndpoint end Failed without starting a model server
(no container env needed). The emulator's events go straight into pipeline.endpoint_lifecycle, which
talks to the emulator (SageMaker) and one moto server (S3, DynamoDB, SNS), all on 127.0.0.1.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud.environment.containerenv import REPO_ROOT
from localcloud.events.patterns import matches_event_pattern
from localcloud.sagemaker.server import SageMakerServer
from localcloud.stack.template import TemplateResolver, load_template
from pipeline import endpoint_lifecycle as lc
from pipeline import lifecycle_state as lstate
from pipeline.adapters.endpoint_state import EndpointStateStore
from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Store
from pipeline.adapters.sagemaker import SageMakerJobs
from pipeline.settings import Settings
from tests.support.polling import wait_until
from tests.support.sagemaker import ROLE_ARN, EventLog, client, local_s3

BUCKET, TABLE, ENDPOINT = "artifacts", "state", "dogclf-endpoint"
JOB = "dogclf-train-aaaaaaaaaaaa"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    events = EventLog()
    with local_s3() as moto_url:  # one moto server: S3, DynamoDB and SNS
        client("s3", moto_url).create_bucket(Bucket=BUCKET)
        client("dynamodb", moto_url).create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sns, sqs = client("sns", moto_url), client("sqs", moto_url)
        topic = sns.create_topic(Name="notes")["TopicArn"]
        queue = sqs.create_queue(QueueName="notes")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        server = SageMakerServer(
            state_dir=tmp_path_factory.mktemp("sagemaker"),
            s3_endpoint_url=moto_url,
            training_python=Path(sys.executable),
            on_event=events,
            endpoint_start_timeout=30,
            serverless_endpoint_events=True,  # these tests check the events' shape
        ).start()
        try:
            yield {"moto": moto_url, "server": server, "events": events, "topic": topic, "queue": queue}
        finally:
            server.stop()


def template_rule(function_id: str, event_name: str) -> dict[str, Any]:
    resolver = TemplateResolver(load_template(REPO_ROOT / "template.yaml"), stack_name="dogbreed-local")
    # The SAM translator names the rule of a function's EventBridgeRule event <Function><Event>.
    return dict(resolver.resources[f"{function_id}{event_name}"].properties["EventPattern"])


def lifecycle(cloud: dict[str, Any]) -> lc.EndpointLifecycle:
    settings = Settings(
        dataset_bucket="datasets",
        artifacts_bucket=BUCKET,
        idempotency_table=TABLE,
        notification_topic_arn=cloud["topic"],
        sagemaker_role_arn=ROLE_ARN,
        endpoint_name=ENDPOINT,
        training_code_dir=REPO_ROOT / "training",
    )
    moto = cloud["moto"]
    return lc.EndpointLifecycle(
        settings,
        SageMakerJobs(client("sagemaker", cloud["server"].url)),
        EndpointStateStore(TABLE, ENDPOINT, client("dynamodb", moto)),
        S3Store(client("s3", moto)),
        Notifier(cloud["topic"], client("sns", moto)),
    )


def endpoint_events(cloud: dict[str, Any], count: int) -> list[dict[str, Any]]:
    def delivered() -> list[dict[str, Any]]:
        cloud["server"].wait_for_events()
        return cloud["events"].of("SageMaker Endpoint State Change", "EndpointName", ENDPOINT)

    return wait_until(
        delivered, lambda seen: len(seen) >= count, timeout_s=60, what=f"{count} endpoint events"
    )


def subjects(cloud: dict[str, Any]) -> list[str]:
    sqs = client("sqs", cloud["moto"])
    messages = sqs.receive_message(QueueUrl=cloud["queue"], MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(message["Body"])["Subject"] for message in messages]


def test_failed_create_is_reported_deleted_and_not_recreated_with_the_failed_model(cloud):
    sm = client("sagemaker", cloud["server"].url)
    sm.create_model(
        ModelName=JOB,
        ExecutionRoleArn=ROLE_ARN,
        PrimaryContainer={"Image": "img", "ModelDataUrl": f"s3://{BUCKET}/missing/model.tar.gz"},
    )
    sm.create_endpoint_config(
        EndpointConfigName=f"{JOB}-cfg",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": JOB,
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1},
            }
        ],
    )
    # ListEndpointConfigs / ListModels page as AWS's do.
    pages = sm.get_paginator("list_endpoint_configs").paginate(
        NameContains="dogclf-train-", PaginationConfig={"PageSize": 1}
    )
    assert [row["EndpointConfigName"] for page in pages for row in page["EndpointConfigs"]] == [f"{JOB}-cfg"]
    assert [row["ModelName"] for row in sm.list_models(NameContains="dogclf-train-")["Models"]] == [JOB]

    created = time.time()
    assert lifecycle(cloud).offer(lstate.Model(JOB, f"{JOB}-cfg", created)) == "create requested"
    creating, failed = endpoint_events(cloud, 2)[:2]
    # AWS's documented shape: status in capitals, epoch-millisecond times, tags as a map.
    assert creating["detail"]["EndpointStatus"] == "CREATING"
    assert failed["detail"]["EndpointStatus"] == "FAILED"
    assert "NoSuchKey" in failed["detail"]["FailureReason"] or "404" in failed["detail"]["FailureReason"]
    assert failed["detail"]["Tags"] == {} and failed["detail"]["LastModifiedTime"] > 1e12
    assert failed["resources"] == [failed["detail"]["EndpointArn"]]

    # The template's rule routes these events (and only this endpoint's) to EndpointStateFunction.
    pattern = template_rule("EndpointStateFunction", "EndpointStateChanged")
    assert matches_event_pattern(pattern, failed) and matches_event_pattern(pattern, creating)
    other = {**failed, "detail": {**failed["detail"], "EndpointName": "another-endpoint"}}
    assert not matches_event_pattern(pattern, other)

    result = lc.on_endpoint_state(
        ENDPOINT, failed["detail"]["EndpointStatus"], lifecycle(cloud), time.time() + 30
    )
    assert result["action"] == "deleting the Failed endpoint to recreate it"
    decision = json.loads(
        client("s3", cloud["moto"]).get_object(Bucket=BUCKET, Key=f"decisions/{JOB}.json")["Body"].read()
    )
    assert decision["endpoint_outcome"]["status"] == "failed"
    assert subjects(cloud) == [f"Model deploy failed: {JOB}"]

    deleting = endpoint_events(cloud, 3)[2]
    assert deleting["detail"]["EndpointStatus"] == "DELETING"
    result = lc.on_endpoint_state(ENDPOINT, "DELETING", lifecycle(cloud), time.time() + 30)
    assert result["action"] == "no endpoint and no model to deploy"  # A failed: not created again
    # A newer passing model is created under the same name once the old endpoint is gone.
    sm.create_endpoint_config(
        EndpointConfigName="dogclf-train-bbbbbbbbbbbb-cfg",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": JOB,
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1},
            }
        ],
    )
    newer = lstate.Model("dogclf-train-bbbbbbbbbbbb", "dogclf-train-bbbbbbbbbbbb-cfg", created + 60)
    assert lifecycle(cloud).offer(newer) == "create requested"
    assert endpoint_events(cloud, 4)[3]["detail"]["EndpointStatus"] == "CREATING"
