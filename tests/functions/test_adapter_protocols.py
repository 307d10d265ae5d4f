"""Each concrete adapter satisfies the Protocol the pipeline's logic is typed against.

mypy checks the assignments in ``_conforms`` (a concrete class that drifts from its Protocol fails
``make typecheck``); the tests compare the same pairs at runtime, method by method, so a renamed
method or a changed signature also fails here.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol

import pytest

from pipeline.adapters.endpoint import Predictor, SageMakerEndpoint
from pipeline.adapters.endpoint_state import EndpointStateStore, LifecycleStateStore
from pipeline.adapters.notify import Notifier, Publisher
from pipeline.adapters.s3 import ObjectStore, ObjectStoreWithClient, S3Store
from pipeline.adapters.sagemaker import JobService, SageMakerJobs


def _conforms(
    s3: S3Store,
    jobs: SageMakerJobs,
    notifier: Notifier,
    state: EndpointStateStore,
    endpoint: SageMakerEndpoint,
) -> None:
    """Never called: mypy checks that each concrete class is assignable to its Protocol."""
    _store: ObjectStore = s3
    _ingest_store: ObjectStoreWithClient = s3
    _jobs: JobService = jobs
    _publisher: Publisher = notifier
    _state: LifecycleStateStore = state
    _predictor: Predictor = endpoint


def protocol_members(protocol: type) -> tuple[dict[str, Any], set[str]]:
    """(methods by name, attribute names) the Protocol declares, its Protocol bases included."""
    methods: dict[str, Any] = {}
    attributes: set[str] = set()
    for base in reversed(protocol.__mro__):
        if base in (object, Protocol) or not getattr(base, "_is_protocol", False):
            continue
        attributes |= set(inspect.get_annotations(base))
        methods |= {
            name: value
            for name, value in base.__dict__.items()
            if inspect.isfunction(value) and not name.startswith("_")
        }
    return methods, attributes


def mismatches(protocol: type, instance: object) -> list[str]:
    """What ``instance`` lacks or declares differently from ``protocol`` (empty when it conforms)."""
    methods, attributes = protocol_members(protocol)
    problems = [f"attribute {name} missing" for name in sorted(attributes) if not hasattr(instance, name)]
    for name, declared in sorted(methods.items()):
        implemented = getattr(type(instance), name, None)
        if implemented is None or not callable(implemented):
            problems.append(f"method {name} missing")
        elif inspect.signature(implemented) != inspect.signature(declared):
            problems.append(f"{name}{inspect.signature(implemented)} != {inspect.signature(declared)}")
    return problems


CLIENT = object()  # never called: the adapters only keep their client until a method runs

PAIRS = [
    (ObjectStore, lambda: S3Store(CLIENT)),
    (ObjectStoreWithClient, lambda: S3Store(CLIENT)),
    (JobService, lambda: SageMakerJobs(CLIENT)),
    (Publisher, lambda: Notifier("arn:aws:sns:us-east-1:000000000000:topic", CLIENT)),
    (LifecycleStateStore, lambda: EndpointStateStore("table", "endpoint", CLIENT)),
    (Predictor, lambda: SageMakerEndpoint("endpoint", CLIENT, CLIENT)),
]


@pytest.mark.parametrize(("protocol", "make"), PAIRS, ids=[protocol.__name__ for protocol, _ in PAIRS])
def test_concrete_adapter_matches_its_protocol(protocol: type, make: Any) -> None:
    methods, _ = protocol_members(protocol)
    assert methods, f"{protocol.__name__} declares no methods"
    assert mismatches(protocol, make()) == []


def test_a_renamed_method_or_changed_signature_is_reported() -> None:
    class Drifted:
        client = CLIENT

        def exists(self, bucket: str, name: str) -> bool:  # parameter renamed
            return False

        def get_blob(self, bucket: str, key: str) -> bytes:  # get_bytes renamed
            return b""

    problems = mismatches(ObjectStore, Drifted())
    assert any(problem.startswith("exists(") for problem in problems)
    assert "method get_bytes missing" in problems
    assert "attribute client missing" in mismatches(ObjectStoreWithClient, object())
