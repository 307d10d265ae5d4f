"""The handlers' init/invoke split (Lambda cold start, SnapStart): importing a handler module creates
its settings, boto3 clients, X-Ray patch and idempotency layer once; invocations create none.

The conftest drops ``pipeline.handlers.*`` around every test, so each import here is a fresh init.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.client
import botocore.exceptions
import botocore.session
import pytest
from botocore.stub import Stubber
from fn_support import ENV, REPO, build_zip, layout_members, load_event, s3_event, tiny_jpeg

from pipeline.adapters import aws as aws_adapter

HANDLERS_DIR = REPO / "functions" / "pipeline" / "handlers"
# The AWS services each function needs, i.e. the clients its init must create (and no others).
CLIENTS_AT_INIT = {
    "ingest": {"s3", "sns", "dynamodb"},
    "dataset_ready": {"s3", "sagemaker", "sns", "dynamodb"},
    "features_completed": {"sagemaker", "s3", "sns", "dynamodb"},
    "tuning_completed": {"sagemaker", "s3", "sns", "dynamodb"},
    "training_completed": {"sagemaker", "s3", "sns", "dynamodb"},
    "classify": {"s3", "sagemaker-runtime", "sagemaker"},
    "import_url": {"s3", "sns"},
    "endpoint_state": {"sagemaker", "s3", "sns", "dynamodb"},
}


@dataclass
class AwsActivity:
    clients_created: list[str] = field(default_factory=list)
    api_calls: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.clients_created.clear()
        self.api_calls.clear()


@pytest.fixture
def activity(aws, monkeypatch) -> AwsActivity:
    """Records every boto3 client created and every AWS API call made (moto answers them)."""
    seen = AwsActivity()
    create_client = botocore.session.Session.create_client
    make_api_call = botocore.client.BaseClient._make_api_call

    def recording_create_client(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        # The X-Ray SDK's recorder creates its sampler's own clients when first imported: not ours.
        if service_name != "xray":
            seen.clients_created.append(service_name)
        return create_client(self, service_name, *args, **kwargs)

    def recording_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        seen.api_calls.append(f"{self.meta.service_model.service_name}.{operation_name}")
        return make_api_call(self, operation_name, api_params)

    monkeypatch.setattr(botocore.session.Session, "create_client", recording_create_client)
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording_api_call)
    return seen


def test_every_handler_module_is_covered() -> None:
    modules = {path.stem for path in HANDLERS_DIR.glob("*.py")} - {"__init__"}
    assert modules == set(CLIENTS_AT_INIT) == set(EVENTS)


@pytest.mark.parametrize("name", sorted(CLIENTS_AT_INIT))
def test_init_creates_the_functions_clients_once(name: str, activity: AwsActivity) -> None:
    module = importlib.import_module(f"pipeline.handlers.{name}")
    assert set(activity.clients_created) == CLIENTS_AT_INIT[name]
    assert len(activity.clients_created) == len(CLIENTS_AT_INIT[name])  # one per service
    assert activity.api_calls == []  # init creates clients, it does not call AWS
    # parsed from the env at init (each function's own model; every one has the topic)
    assert module.settings.notification_topic_arn == ENV["NOTIFICATION_TOPIC_ARN"]


def _ingest_event(aws: Any) -> dict[str, Any]:
    aws.s3.put_object(Bucket=ENV["DATASET_BUCKET"], Key="uploads/cold.zip", Body=build_zip(layout_members()))
    return s3_event("ingest.json", ENV["DATASET_BUCKET"], "uploads/cold.zip")


def _classify_event(aws: Any) -> dict[str, Any]:
    aws.s3.put_object(Bucket=ENV["INFERENCE_BUCKET"], Key="input/cold.jpg", Body=b"not an image")
    return {"bucket": ENV["INFERENCE_BUCKET"], "key": "input/cold.jpg"}


# An event per function that makes it call AWS (moto): the outcome does not matter here, only
# which clients the calls went through.
EVENTS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "ingest": _ingest_event,
    "dataset_ready": lambda aws: s3_event(
        "dataset_ready.json", ENV["DATASET_BUCKET"], "datasets/cold-0123456789ab/manifest.json"
    ),
    "features_completed": lambda aws: load_event("features_completed.json"),
    "tuning_completed": lambda aws: load_event("tuning_completed.json"),
    "training_completed": lambda aws: load_event("training_completed.json"),
    "classify": _classify_event,
    "import_url": lambda aws: {"url": "http://example.com/plain-http.zip", "name": "cold"},
    "endpoint_state": lambda aws: load_event("endpoint_state.json"),
}


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_invocations_reuse_the_init_clients(name: str, aws, activity: AwsActivity, lambda_context) -> None:
    event = EVENTS[name](aws)
    module = importlib.import_module(f"pipeline.handlers.{name}")
    for _ in range(2):  # the cold (first) invocation, then a warm one
        activity.reset()
        # An error (e.g. a job moto does not know) still went through a client: that is what counts.
        with contextlib.suppress(Exception):
            module.handler(json.loads(json.dumps(event)), lambda_context)
        assert activity.api_calls, "the event did not reach AWS: nothing was checked"
        assert activity.clients_created == []


def test_idempotency_records_keep_the_function_names(aws, lambda_context) -> None:
    """Powertools keys a record by <function name>.<module>.<qualname>: records written by earlier
    deployments still deduplicate only while the work functions keep these names."""
    event = _ingest_event(aws)
    ingest = importlib.import_module("pipeline.handlers.ingest")
    first = ingest.handler(json.loads(json.dumps(event)), lambda_context)
    assert ingest.handler(json.loads(json.dumps(event)), lambda_context) == first
    [item] = aws.dynamodb.scan(TableName=ENV["IDEMPOTENCY_TABLE"])["Items"]
    assert ".pipeline.handlers.ingest.ingest_once#" in item["id"]["S"]
    assert item["status"]["S"] == "COMPLETED"


def test_client_cache_returns_one_client_per_service(aws) -> None:
    first = aws_adapter.client("s3")
    assert aws_adapter.client("s3") is first
    assert aws_adapter.client("sns") is not first
    aws_adapter.clear_clients()
    assert aws_adapter.client("s3") is not first


# ------------------------------------------------------------------ in a Lambda-like interpreter


def run_python(code: str, **extra_env: str) -> dict[str, Any]:
    """Run `code` in a fresh interpreter with the functions' environment; it prints one JSON line."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT_URL", "LAMBDA_TASK"))},
        **ENV,
        **extra_env,
    }
    prelude = "import json, sys\n"
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_tracing_is_set_up_by_init_in_lambda(tmp_path: Path) -> None:
    """With ``Tracing: Active`` the X-Ray SDK is loaded and botocore patched while importing the
    handler (init, which SnapStart snapshots), not by its first call."""
    report = run_python(
        """
        import botocore.client
        import pipeline.handlers.tuning_completed as handler_module
        wrapper = type(botocore.client.BaseClient.__dict__["_make_api_call"]).__name__
        print(json.dumps({"xray": "aws_xray_sdk.core" in sys.modules, "botocore_patched": wrapper}))
        """,
        LAMBDA_TASK_ROOT=str(tmp_path),
        AWS_LAMBDA_FUNCTION_NAME="cold-start-test",
        _X_AMZN_TRACE_ID="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        POWERTOOLS_TRACE_DISABLED="false",
    )
    assert report == {"xray": True, "botocore_patched": "FunctionWrapper"}


def test_base64_classify_needs_no_client_beyond_init(aws, activity: AwsActivity, lambda_context) -> None:
    """The direct {"image"} shape reaches the endpoint through the init-time runtime client."""
    classify = importlib.import_module("pipeline.handlers.classify")
    activity.reset()
    with Stubber(aws_adapter.client("sagemaker-runtime")) as runtime:
        runtime.add_client_error("invoke_endpoint", "AccessDeniedException", "no", http_status_code=403)
        with pytest.raises(botocore.exceptions.ClientError):
            classify.handler({"image": base64.b64encode(tiny_jpeg()).decode()}, lambda_context)
    assert activity.clients_created == []
