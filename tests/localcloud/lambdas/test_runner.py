"""The Lambda runner: environment, context, retries, timeouts and the on-failure record."""

import json
import time

import pytest

from localcloud.lambdas.runner import (
    Destination,
    FunctionSpec,
    InvocationError,
    LambdaRunner,
    base_lambda_environment,
)
from tests.support.fixtures import fixture_text

HANDLERS = fixture_text("lambdas/runner_handlers.py")


@pytest.fixture
def code_dir(tmp_path):
    directory = tmp_path / "code"
    directory.mkdir()
    (directory / "handlers.py").write_text(HANDLERS)
    (directory / "broken.py").write_text("raise ImportError('missing dependency')\n")
    return directory


def make_spec(code_dir, handler, *, timeout_s=10.0, env=None, on_failure=None, reserved_concurrency=None):
    name = f"fn-{handler.replace('.', '-')}"
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
    environment = base_lambda_environment(name, arn, 256, timeout_s, "us-east-1")
    environment.update(env or {})
    return FunctionSpec(
        logical_id=name,
        name=name,
        arn=arn,
        handler=handler,
        code_dir=code_dir,
        environment=environment,
        timeout_s=timeout_s,
        memory_mb=256,
        on_failure=on_failure,
        reserved_concurrency=reserved_concurrency,
    )


@pytest.fixture
def delivered():
    return []


@pytest.fixture
def make_runner(tmp_path, delivered):
    runners = []

    def factory(*specs):
        runner = LambdaRunner(
            {spec.name: spec for spec in specs},
            log_dir=tmp_path,
            send_to_destination=lambda destination, message: delivered.append((destination, message)),
            retry_delays_s=(0.05, 0.05),
        )
        runners.append(runner)
        return runner

    yield factory
    for runner in runners:
        runner.close()


def test_sync_invoke_sees_environment_and_context(code_dir, make_runner):
    spec = make_spec(code_dir, "handlers.echo", env={"GREETING": "hello"})
    runner = make_runner(spec)
    result = runner.invoke(spec.name, {"n": 1})
    assert result["event"] == {"n": 1}
    assert result["greeting"] == "hello"
    assert result["function_name"] == spec.name
    assert result["arn"] == spec.arn
    assert result["memory"] == 256
    assert 0 < result["remaining_ms"] <= 10_000
    second = runner.invoke(spec.name, {"n": 2})
    assert second["request_id"] != result["request_id"]


def test_prints_go_to_the_function_log(code_dir, make_runner, tmp_path):
    spec = make_spec(code_dir, "handlers.noisy")
    runner = make_runner(spec)
    assert runner.invoke(spec.name, {}) == "fine"
    runner.close()
    assert "this goes to the log" in (tmp_path / f"{spec.name}.log").read_text()


def test_sync_error_carries_the_handler_error(code_dir, make_runner):
    spec = make_spec(code_dir, "handlers.fail")
    runner = make_runner(spec)
    with pytest.raises(InvocationError) as caught:
        runner.invoke(spec.name, {"n": 7})
    assert caught.value.payload["errorType"] == "ValueError"
    assert caught.value.payload["errorMessage"] == "bad input: 7"


def test_async_failure_retries_twice_then_sends_the_aws_record(code_dir, make_runner, delivered):
    destination = Destination("arn:aws:sqs:us-east-1:123456789012:failed")
    spec = make_spec(code_dir, "handlers.fail", on_failure=destination)
    runner = make_runner(spec)
    assert runner.invoke_async(spec.name, {"n": 3}).result(timeout=30) is False
    attempts = [r for r in runner.records if r.function == spec.name]
    assert [r.attempt for r in attempts] == [1, 2, 3]
    assert len({r.request_id for r in attempts}) == 1  # retries keep the request id
    ((target, record),) = delivered
    assert target == destination
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["functionArn"] == f"{spec.arn}:$LATEST"
    assert record["requestPayload"] == {"n": 3}
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorMessage"] == "bad input: 3"
    json.dumps(record)  # it must be sendable as an SQS message body


def test_async_success_on_the_last_retry_sends_nothing(code_dir, make_runner, delivered, tmp_path):
    spec = make_spec(
        code_dir,
        "handlers.fail_twice",
        env={"MARKER_DIR": str(tmp_path)},
        on_failure=Destination("arn:aws:sqs:us-east-1:123456789012:failed"),
    )
    runner = make_runner(spec)
    assert runner.invoke_async(spec.name, {}).result(timeout=30) is True
    assert [r.ok for r in runner.records] == [False, False, True]
    assert delivered == []
    assert runner.wait_idle(1)


def test_timeout_kills_the_sandbox(code_dir, make_runner):
    slow = make_spec(code_dir, "handlers.sleep", timeout_s=1.0)
    runner = make_runner(slow)
    started = time.monotonic()
    with pytest.raises(InvocationError, match=r"Task timed out after 1\.00 seconds"):
        runner.invoke(slow.name, {})
    assert time.monotonic() - started < 10
    assert all(not worker.alive for worker in runner._all_workers)


def test_import_errors_are_reported_on_each_invocation(code_dir, make_runner):
    spec = make_spec(code_dir, "broken.handler")
    runner = make_runner(spec)
    for _ in range(2):
        with pytest.raises(InvocationError, match="ImportModuleError"):
            runner.invoke(spec.name, {})


def test_handlers_cannot_import_localcloud(code_dir, make_runner):
    (code_dir / "probe.py").write_text(
        "def handler(event, context):\n"
        "    try:\n        import localcloud\n    except ImportError:\n        return 'isolated'\n"
        "    return 'leaked'\n"
    )
    spec = make_spec(code_dir, "probe.handler")
    assert make_runner(spec).invoke(spec.name, {}) == "isolated"


def test_reserved_concurrency_caps_concurrent_invocations(code_dir, make_runner, tmp_path):
    """Three events at once (the runner runs up to 4): with ReservedConcurrentExecutions 2, each handler
    waits for all three to be inside at once, which must never happen; two must be."""
    spec = make_spec(code_dir, "handlers.crowd", env={"MARKER_DIR": str(tmp_path)}, reserved_concurrency=2)
    runner = make_runner(spec)
    futures = [runner.invoke_async(spec.name, {"wait_s": 3.0, "enough": 3}) for _ in range(3)]
    assert all(future.result(timeout=60) for future in futures)
    assert max(record.payload for record in runner.records) == 2
