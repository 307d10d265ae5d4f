"""Fixtures for the Lambda code tests (the helpers live in fn_support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.stub import Stubber
from fn_support import (
    FakeAws,
    FakeLambdaContext,
    drop_handler_modules,
    fake_aws,
    sample_zip_bytes,
    set_test_environment,
)
from request_snapshots import RequestSnapshots, update_requested


@pytest.fixture(autouse=True)
def _function_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scoped to each test so the rest of the suite (local cloud, e2e) never sees it. Handler
    modules read their settings when imported, so tests import them inside the test or a fixture."""
    set_test_environment(monkeypatch)


@pytest.fixture
def request_snapshot(pytestconfig: pytest.Config) -> RequestSnapshots:
    """Compares a built request with its snapshot file, or rewrites the file under --update-snapshots
    (option registered in tests/conftest.py) or UPDATE_SNAPSHOTS=1."""
    return RequestSnapshots(update=update_requested(bool(pytestconfig.getoption("update_snapshots"))))


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def aws(_function_environment: None) -> Iterator[FakeAws]:
    yield from fake_aws()


def _stubbed(service: str) -> Iterator[Stubber]:
    """A Stubber on the functions' own client for ``service`` (pipeline.adapters.aws.client: one per
    service per process, so the handler under test uses this one). Nothing is queued: a call the test
    did not queue fails, and a queued response the code never asked for fails the test at teardown."""
    from pipeline.adapters.aws import client

    stubber = Stubber(client(service))
    with stubber:
        yield stubber
    stubber.assert_no_pending_responses()


@pytest.fixture
def sagemaker(aws: FakeAws) -> Iterator[Stubber]:
    """SageMaker where moto falls short (update_endpoint, a chosen BestTrainingJob) or a request must be
    exact; the rest of AWS stays moto (``aws``)."""
    yield from _stubbed("sagemaker")


@pytest.fixture
def runtime(aws: FakeAws) -> Iterator[Stubber]:
    """SageMaker Runtime: moto has no model behind invoke_endpoint."""
    yield from _stubbed("sagemaker-runtime")


@pytest.fixture
def sample_zip(tmp_path: Path) -> bytes:
    return sample_zip_bytes(tmp_path)


@pytest.fixture(autouse=True)
def _fresh_handler_modules() -> Iterator[None]:
    """Handler modules create their settings, clients and idempotency layer at import (Lambda's init),
    so every test imports them anew: under its own environment and its own fake AWS."""
    drop_handler_modules()
    yield
    drop_handler_modules()
