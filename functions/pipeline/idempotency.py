"""Powertools Idempotency backed by the stack's DynamoDB table, shared by every function that starts
or changes something: a duplicate S3 or EventBridge delivery returns the first call's result.

The decorator is applied on the first call rather than at import (``deferred_idempotent_function``):
importing Powertools' idempotency utility imports boto3 and the persistence layer creates a DynamoDB
client, together ~200 ms that would otherwise be part of the cold start.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from pipeline.settings import Settings

# Long enough to cover S3/EventBridge redeliveries and Lambda's async retries (up to 6 hours).
RECORD_TTL_SECONDS = 7 * 24 * 3600

R = TypeVar("R")


def persistence_layer(settings: Settings) -> DynamoDBPersistenceLayer:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from pipeline.adapters.aws import client

    return DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=client("dynamodb"))


def idempotency_config() -> IdempotencyConfig:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

    return IdempotencyConfig(raise_on_no_idempotency_key=True, expires_after_seconds=RECORD_TTL_SECONDS)


class DeferredIdempotentFunction(Generic[R]):
    """``idempotent_function(function, data_keyword_argument=..., persistence_store=<the table>,
    config=...)``, built by ``prepare()`` (the first call does it) instead of at import.

    Records and keys are the same as with the plain decorator: Powertools derives the key from the
    wrapped function's module and name, which this wrapper leaves alone.
    """

    def __init__(self, function: Callable[..., R], data_keyword_argument: str) -> None:
        functools.update_wrapper(self, function)
        self._function = function
        self._data_keyword_argument = data_keyword_argument
        self._config: IdempotencyConfig | None = None
        self._idempotent: Callable[..., R] | None = None
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Import the utility and create the persistence layer and its DynamoDB client (once)."""
        if self._idempotent is not None:
            return
        with self._lock:
            if self._idempotent is None:
                from aws_lambda_powertools.utilities.idempotency import idempotent_function

                from pipeline.settings import get_settings

                self._config = idempotency_config()
                self._idempotent = idempotent_function(
                    self._function,
                    data_keyword_argument=self._data_keyword_argument,
                    persistence_store=persistence_layer(get_settings()),
                    config=self._config,
                )

    def register_lambda_context(self, context: LambdaContext) -> None:
        """Lets Powertools expire an in-progress record when the invocation times out."""
        self.prepare()
        assert self._config is not None
        self._config.register_lambda_context(context)

    def __call__(self, **kwargs: Any) -> R:
        self.prepare()
        assert self._idempotent is not None
        return self._idempotent(**kwargs)


def deferred_idempotent_function(
    *, data_keyword_argument: str
) -> Callable[[Callable[..., R]], DeferredIdempotentFunction[R]]:
    """Decorator form of DeferredIdempotentFunction (same arguments as Powertools' decorator minus
    the persistence store and config, which are always this stack's table and idempotency_config())."""

    def decorate(function: Callable[..., R]) -> DeferredIdempotentFunction[R]:
        return DeferredIdempotentFunction(function, data_keyword_argument)

    return decorate
