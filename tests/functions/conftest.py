"""Fixtures for the Lambda code tests (the helpers live in fn_support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fn_support import (
    FakeAws,
    FakeLambdaContext,
    drop_handler_modules,
    fake_aws,
    sample_zip_bytes,
    set_test_environment,
)


@pytest.fixture(autouse=True)
def _function_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scoped to each test so the rest of the suite (local cloud, e2e) never sees it. Handler
    modules read their settings when imported, so tests import them inside the test or a fixture."""
    set_test_environment(monkeypatch)


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def aws(_function_environment: None) -> Iterator[FakeAws]:
    yield from fake_aws()


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
