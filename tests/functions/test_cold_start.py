"""What the handlers defer to their first call (cold start), and that the deferred pieces still work:
the X-Ray provider, the idempotency decorator and the client cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from fn_support import ENV, REPO, TRAINING_DIR

from pipeline.adapters import aws as aws_adapter
from pipeline.idempotency import deferred_idempotent_function

HANDLER_MODULES = [
    "pipeline.handlers.ingest",
    "pipeline.handlers.start_tuning",
    "pipeline.handlers.tuning_completed",
    "pipeline.handlers.training_completed",
    "pipeline.handlers.classify",
    "pipeline.handlers.import_url",
]
# Each costs tens to hundreds of milliseconds to import; none is needed before the first call.
HEAVY_MODULES = [
    "boto3",
    "botocore.session",
    "pydantic",
    "aws_xray_sdk.core",
    "aws_lambda_powertools.utilities.idempotency",
    "aws_lambda_powertools.utilities.parser",
    "aws_lambda_powertools.utilities.data_classes",
]


# X-Ray's botocore patch replaces the client method with a wrapt FunctionWrapper.
XRAY_PATCHED = """
def xray_patched():
    import botocore.client
    return type(botocore.client.BaseClient.__dict__["_make_api_call"]).__name__ == "FunctionWrapper"
"""


def run_python(code: str, **extra_env: str) -> dict:
    """Run `code` in a fresh interpreter (the test process has everything imported already) with
    the functions' environment; it prints one JSON line."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT_URL", "LAMBDA_TASK"))},
        **ENV,
        **extra_env,
    }
    prelude = f"import sys, json; sys.path[:0] = [{str(REPO / 'functions')!r}, {str(TRAINING_DIR)!r}]\n"
    prelude += XRAY_PATCHED
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", HANDLER_MODULES)
def test_importing_a_handler_loads_nothing_heavy_and_prepare_loads_what_the_call_needs(module) -> None:
    report = run_python(
        f"""
        import {module} as handler_module
        heavy = {HEAVY_MODULES!r}
        at_import = [name for name in heavy if name in sys.modules]
        from pipeline.adapters import aws
        clients_at_import = sorted(aws._clients)
        handler_module.prepare()
        first = dict(aws._clients)
        handler_module.prepare()  # a warm call: nothing new is created
        same = all(aws._clients[name] is first[name] for name in first) and len(aws._clients) == len(first)
        print(json.dumps({{"at_import": at_import, "clients_at_import": clients_at_import,
                          "after_prepare": [name for name in heavy if name in sys.modules],
                          "clients": sorted(first), "same": same}}))
        """
    )
    assert report["at_import"] == [] and report["clients_at_import"] == []
    assert {"boto3", "pydantic", "aws_xray_sdk.core"} <= set(report["after_prepare"])
    assert report["clients"] and report["same"]
    if not module.endswith(("classify", "import_url")):  # the two without idempotency
        assert "dynamodb" in report["clients"]  # the idempotency layer's client


def test_deferred_xray_provider_applies_patches_when_loaded_in_lambda() -> None:
    """As in Lambda (LAMBDA_TASK_ROOT set, tracing enabled): Tracer asks for the botocore patch at
    import, X-Ray is loaded by the handler's first subsegment and patches botocore then."""
    report = run_python(
        """
        from pipeline.observability import tracer, xray_provider
        loaded_at_import = xray_provider.loaded or "aws_xray_sdk.core" in sys.modules
        patched_before = xray_patched()

        @tracer.capture_lambda_handler
        def handler(event, context):
            return {"ok": True}

        result = handler({}, None)
        print(json.dumps({"loaded_at_import": loaded_at_import, "patched_before": patched_before,
                          "disabled": tracer.disabled, "result": result,
                          "patched_after": xray_patched(),
                          "streaming_threshold": xray_provider.recorder().streaming_threshold}))
        """,
        LAMBDA_TASK_ROOT=str(REPO / "functions"),
        POWERTOOLS_TRACE_DISABLED="false",
        _X_AMZN_TRACE_ID="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    )
    assert report["disabled"] is False and report["result"] == {"ok": True}
    assert report["loaded_at_import"] is False and report["patched_before"] is False
    assert report["patched_after"] is True and report["streaming_threshold"] == 0


def test_disabled_tracer_still_wraps_the_handler() -> None:
    report = run_python(
        """
        from pipeline.observability import tracer, xray_provider

        @tracer.capture_lambda_handler
        def handler(event, context):
            raise ValueError("boom")

        try:
            handler({}, None)
            outcome = "returned"
        except ValueError as error:
            outcome = str(error)
        print(json.dumps({"disabled": tracer.disabled, "outcome": outcome,
                          "patched": xray_patched()}))
        """
    )
    assert report == {"disabled": True, "outcome": "boom", "patched": False}


def test_deferred_idempotent_function_keys_records_like_the_plain_decorator(aws, lambda_context) -> None:
    calls: list[dict] = []

    @deferred_idempotent_function(data_keyword_argument="order")
    def process(order: dict) -> dict:
        calls.append(order)
        return {"done": order["id"]}

    process.register_lambda_context(lambda_context)
    assert process(order={"id": 1}) == {"done": 1}
    assert process(order={"id": 1}) == {"done": 1}  # duplicate: the stored result
    assert process(order={"id": 2}) == {"done": 2}
    assert calls == [{"id": 1}, {"id": 2}]
    items = aws.dynamodb.scan(TableName=ENV["IDEMPOTENCY_TABLE"])["Items"]
    # Powertools' key: <Lambda function name>.<module>.<qualname>#<hash>, the wrapped function's names.
    key_part = f".{__name__}.{process.__qualname__}#"
    assert len(items) == 2 and all(key_part in item["id"]["S"] for item in items)
    assert process.__name__ == "process"


def test_deferred_idempotent_function_requires_the_keyword(aws) -> None:
    @deferred_idempotent_function(data_keyword_argument="order")
    def process(order: dict) -> dict:
        return order

    with pytest.raises(RuntimeError, match="Unable to extract 'order'"):
        process(something={"id": 1})


def test_client_cache_returns_one_client_per_service(aws) -> None:
    first = aws_adapter.client("s3")
    assert aws_adapter.client("s3") is first
    assert aws_adapter.client("sns") is not first
    aws_adapter.client.cache_clear()
    assert aws_adapter.client("s3") is not first
