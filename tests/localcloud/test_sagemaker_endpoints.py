"""Endpoints: a real model server process per endpoint, invoked through boto3's sagemaker-runtime."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest

from localcloud.sagemaker.server import SageMakerServer
from localcloud.sagemaker.testing import ROLE_ARN, EventLog, client, local_s3, tar_gz

BUCKET = "models"

# A tiny but real inference module (pure Python, so servers start fast): a linear model whose
# weights and version live in weights.json, with the inference.py contract's error classes.
INFERENCE = r"""
import json, os, time

class InvalidInputError(ValueError):
    pass

class UnsupportedContentTypeError(ValueError):
    pass

def model_fn(model_dir):
    with open(os.path.join(model_dir, "weights.json")) as handle:
        model = json.load(handle)
    if model.get("corrupt"):
        raise RuntimeError("weights.json is corrupt")
    return model

def input_fn(body, content_type):
    if content_type != "application/json":
        raise UnsupportedContentTypeError(f"unsupported content type {content_type}")
    try:
        data = json.loads(body)
    except ValueError as error:
        raise InvalidInputError(f"body is not JSON: {error}") from error
    if not isinstance(data, dict) or "x" not in data:
        raise InvalidInputError('expected {"x": [numbers]}')
    return data

def predict_fn(data, model):
    time.sleep(model.get("delay", 0))
    if data.get("explode"):
        raise RuntimeError("kaboom")
    return {"y": sum(w * x for w, x in zip(model["w"], data["x"])), "version": model["version"]}

def output_fn(prediction, accept):
    return json.dumps(prediction)
"""


def model_archive(version: int, corrupt: bool = False) -> bytes:
    weights = {"w": [1.0, 2.0], "version": version, "delay": 0.02, "corrupt": corrupt}
    return tar_gz({"weights.json": json.dumps(weights), "code/inference.py": INFERENCE})


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    events = EventLog()
    with local_s3() as s3_url:
        s3 = client("s3", s3_url)
        s3.create_bucket(Bucket=BUCKET)
        for name, body in (
            ("v1", model_archive(1)),
            ("v2", model_archive(2)),
            ("bad", model_archive(3, corrupt=True)),
        ):
            s3.put_object(Bucket=BUCKET, Key=f"{name}/model.tar.gz", Body=body)
        server = SageMakerServer(
            state_dir=tmp_path_factory.mktemp("sagemaker"), s3_endpoint_url=s3_url, on_event=events
        ).start()
        sm = client("sagemaker", server.url)
        for name in ("v1", "v2", "bad"):
            sm.create_model(
                ModelName=f"model-{name}",
                ExecutionRoleArn=ROLE_ARN,
                PrimaryContainer={
                    "Image": "pytorch-inference:local",
                    "ModelDataUrl": f"s3://{BUCKET}/{name}/model.tar.gz",
                    "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
                },
            )
            sm.create_endpoint_config(
                EndpointConfigName=f"config-{name}",
                ProductionVariants=[
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": f"model-{name}",
                        "InstanceType": "ml.m5.large",
                        "InitialInstanceCount": 1,
                    }
                ],
            )
        sm.create_endpoint_config(
            EndpointConfigName="config-v2-serverless",
            ProductionVariants=[
                {
                    "VariantName": "Serverless",
                    "ModelName": "model-v2",
                    "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
                }
            ],
        )
        try:
            yield {
                "sm": sm,
                "runtime": client("sagemaker-runtime", server.url),
                "events": events,
                "server": server,
            }
        finally:
            server.stop()


def wait_in_service(sm: Any, name: str) -> dict[str, Any]:
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 90})
    return sm.describe_endpoint(EndpointName=name)


def invoke(runtime: Any, name: str, payload: Any, content_type: str = "application/json") -> dict[str, Any]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    response = runtime.invoke_endpoint(
        EndpointName=name, Body=body, ContentType=content_type, Accept="application/json"
    )
    return {**json.loads(response["Body"].read()), "_variant": response["InvokedProductionVariant"]}


def model_error(
    runtime: Any, name: str, payload: bytes, content_type: str = "application/json"
) -> dict[str, Any]:
    with pytest.raises(runtime.exceptions.ModelError) as error:
        runtime.invoke_endpoint(EndpointName=name, Body=payload, ContentType=content_type)
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 424
    return error.value.response


def test_invoke_round_trip_and_model_errors(cloud: dict[str, Any]) -> None:
    sm, runtime = cloud["sm"], cloud["runtime"]
    sm.create_endpoint(EndpointName="ep-basic", EndpointConfigName="config-v1")
    desc = wait_in_service(sm, "ep-basic")
    assert desc["ProductionVariants"][0]["CurrentInstanceCount"] == 1

    assert invoke(runtime, "ep-basic", {"x": [3, 4]}) == {"y": 11.0, "version": 1, "_variant": "AllTraffic"}

    bad_json = model_error(runtime, "ep-basic", b"{nope")
    assert bad_json["OriginalStatusCode"] == 400
    assert "body is not JSON" in bad_json["OriginalMessage"]
    assert bad_json["Error"]["Code"] == "ModelError"
    assert model_error(runtime, "ep-basic", b"\x89PNG", content_type="image/png")["OriginalStatusCode"] == 415
    crashed = model_error(runtime, "ep-basic", json.dumps({"x": [1], "explode": True}).encode())
    assert crashed["OriginalStatusCode"] == 500 and "kaboom" in crashed["OriginalMessage"]
    # The server survives all of it.
    assert invoke(runtime, "ep-basic", {"x": [1, 1]})["y"] == 3.0


def test_update_switches_models_without_dropping_requests(cloud: dict[str, Any]) -> None:
    sm, runtime = cloud["sm"], cloud["runtime"]
    sm.create_endpoint(EndpointName="ep-live", EndpointConfigName="config-v1")
    wait_in_service(sm, "ep-live")

    stop = threading.Event()
    results: list[list[int]] = [[] for _ in range(4)]
    failures: list[BaseException] = []

    def hammer(slot: int) -> None:
        worker_runtime = client("sagemaker-runtime", cloud["server"].url)
        while not stop.is_set():
            try:
                results[slot].append(invoke(worker_runtime, "ep-live", {"x": [1, 0]})["version"])
            except Exception as error:  # any failure is a dropped request
                failures.append(error)

    workers = [threading.Thread(target=hammer, args=(slot,)) for slot in range(4)]
    for worker in workers:
        worker.start()
    time.sleep(0.5)
    sm.update_endpoint(EndpointName="ep-live", EndpointConfigName="config-v2-serverless")
    assert sm.describe_endpoint(EndpointName="ep-live")["EndpointStatus"] == "Updating"
    desc = wait_in_service(sm, "ep-live")
    time.sleep(0.5)
    stop.set()
    for worker in workers:
        worker.join(timeout=30)

    assert failures == []
    assert desc["EndpointConfigName"] == "config-v2-serverless"
    assert desc["ProductionVariants"][0]["CurrentServerlessConfig"]["MaxConcurrency"] == 5
    for versions in results:
        assert versions[0] == 1 and versions[-1] == 2
        assert versions == sorted(versions)  # once switched, never back to the old model
    assert sum(len(v) for v in results) > 40

    # A failing update rolls back: still InService on the old config, FailureReason says why.
    sm.update_endpoint(EndpointName="ep-live", EndpointConfigName="config-bad")
    deadline = time.monotonic() + 90
    while (desc := sm.describe_endpoint(EndpointName="ep-live"))["EndpointStatus"] == "Updating":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert desc["EndpointStatus"] == "InService"
    assert desc["EndpointConfigName"] == "config-v2-serverless"
    assert "weights.json is corrupt" in desc["FailureReason"]
    assert invoke(runtime, "ep-live", {"x": [1, 0]})["version"] == 2


def test_endpoint_that_cannot_load_its_model_fails(cloud: dict[str, Any]) -> None:
    sm = cloud["sm"]
    sm.create_endpoint(EndpointName="ep-broken", EndpointConfigName="config-bad")
    with pytest.raises(botocore.exceptions.WaiterError):
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName="ep-broken", WaiterConfig={"Delay": 1, "MaxAttempts": 90}
        )
    desc = sm.describe_endpoint(EndpointName="ep-broken")
    assert desc["EndpointStatus"] == "Failed"
    assert "weights.json is corrupt" in desc["FailureReason"]


def test_delete_endpoint_and_events(cloud: dict[str, Any]) -> None:
    sm, runtime, events, server = cloud["sm"], cloud["runtime"], cloud["events"], cloud["server"]
    sm.create_endpoint(EndpointName="ep-gone", EndpointConfigName="config-v1")
    wait_in_service(sm, "ep-gone")
    with pytest.raises(botocore.exceptions.ClientError) as error:
        sm.create_endpoint(EndpointName="ep-gone", EndpointConfigName="config-v1")
    assert error.value.response["Error"]["Code"] == "ValidationException"
    assert "ep-gone" in [e["EndpointName"] for e in sm.list_endpoints(NameContains="ep-gone")["Endpoints"]]

    sm.delete_endpoint(EndpointName="ep-gone")
    with pytest.raises(botocore.exceptions.ClientError) as error:
        sm.describe_endpoint(EndpointName="ep-gone")
    assert error.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(botocore.exceptions.ClientError) as error:
        runtime.invoke_endpoint(EndpointName="ep-gone", Body=b"{}", ContentType="application/json")
    assert error.value.response["Error"]["Code"] == "ValidationError"

    server.wait_for_events()
    seen = events.of("SageMaker Endpoint State Change", "EndpointName", "ep-gone")
    assert [e["detail"]["EndpointStatus"] for e in seen] == ["Creating", "InService", "Deleting"]
    in_service = seen[1]
    assert in_service["source"] == "aws.sagemaker"
    assert in_service["resources"] == [in_service["detail"]["EndpointArn"]]
    assert in_service["detail"]["EndpointConfigName"] == "config-v1"
    assert in_service["detail"]["ProductionVariants"][0]["VariantName"] == "AllTraffic"
