"""The functions' boto3 clients: botocore's read timeout unless the environment sets one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipeline.adapters import aws


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    aws.clear_clients()
    yield
    aws.clear_clients()


def test_read_timeout_is_botocores_default_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(aws.READ_TIMEOUT_ENV, raising=False)
    assert aws.client("s3").meta.config.read_timeout == 60


def test_read_timeout_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(aws.READ_TIMEOUT_ENV, "4.5")
    config = aws.client("s3").meta.config
    assert config.read_timeout == 4.5
