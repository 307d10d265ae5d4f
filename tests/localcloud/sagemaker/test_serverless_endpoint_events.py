"""The emulator's switch for serverless endpoint state events (whether the pipeline may count on them).

AWS documents "SageMaker Endpoint State Change" for real-time endpoints and nothing for serverless
ones, so by default the emulator sends none for a serverless endpoint (the strict side) and always
sends them for an instance endpoint. A model whose artifact does not exist makes CreateEndpoint end
Failed without starting a model server, so both cases are cheap.
"""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import pytest

from localcloud.sagemaker.registry import BackendContext
from localcloud.sagemaker.server import SageMakerServer
from tests.support.sagemaker import ROLE_ARN, EventLog, client, local_s3

SERVERLESS = {"ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1}}
INSTANCE = {"InstanceType": "ml.m5.large", "InitialInstanceCount": 1}


def endpoint_statuses(tmp_path, switch: bool | None) -> dict[str, list[str]]:
    events = EventLog()
    with local_s3() as s3_url:
        server = SageMakerServer(
            state_dir=tmp_path / "sagemaker",
            s3_endpoint_url=s3_url,
            on_event=events,
            endpoint_start_timeout=30,
            serverless_endpoint_events=switch,
        ).start()
        try:
            sm = client("sagemaker", server.url)
            sm.create_model(
                ModelName="m",
                ExecutionRoleArn=ROLE_ARN,
                PrimaryContainer={"Image": "img", "ModelDataUrl": "s3://missing/model.tar.gz"},
            )
            kinds: dict[str, dict[str, Any]] = {"serverless": SERVERLESS, "instance": INSTANCE}
            for kind, variant in kinds.items():
                sm.create_endpoint_config(
                    EndpointConfigName=f"c-{kind}",
                    ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "m", **variant}],
                )
                sm.create_endpoint(EndpointName=f"ep-{kind}", EndpointConfigName=f"c-{kind}")
            for kind in kinds:
                # The waiter stops at Failed (its failure state): no polling of our own.
                with pytest.raises(botocore.exceptions.WaiterError):
                    sm.get_waiter("endpoint_in_service").wait(
                        EndpointName=f"ep-{kind}", WaiterConfig={"Delay": 1, "MaxAttempts": 60}
                    )
                assert sm.describe_endpoint(EndpointName=f"ep-{kind}")["EndpointStatus"] == "Failed"
            server.wait_for_events()
        finally:
            server.stop()
    return {
        kind: [
            e["detail"]["EndpointStatus"]
            for e in events.of("SageMaker Endpoint State Change", "EndpointName", f"ep-{kind}")
        ]
        for kind in ("serverless", "instance")
    }


def test_by_default_serverless_endpoints_send_no_state_events(tmp_path, monkeypatch):
    monkeypatch.delenv("LOCALCLOUD_SERVERLESS_ENDPOINT_EVENTS", raising=False)
    assert endpoint_statuses(tmp_path, None) == {"serverless": [], "instance": ["CREATING", "FAILED"]}


def test_switched_on_serverless_endpoints_send_them_too(tmp_path):
    assert endpoint_statuses(tmp_path, True) == {
        "serverless": ["CREATING", "FAILED"],
        "instance": ["CREATING", "FAILED"],
    }


def test_the_switch_refuses_a_value_it_does_not_know(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCALCLOUD_SERVERLESS_ENDPOINT_EVENTS", "maybe")
    with pytest.raises(ValueError, match="on or off"):
        BackendContext(state_dir=tmp_path, s3_endpoint_url="http://127.0.0.1:9")
