"""Walk a response against botocore's output shape and list the members it lacks.

AWS's Describe*/List* answers carry more than any one caller reads (the SageMaker Python SDK indexes
``OutputDataConfig.KmsKeyId`` unconditionally, for one). ``missing_members`` names every member of the
operation's output shape, at any depth the response reaches (structures, lists and maps of them),
that the response leaves out, except those the caller lists as absent for a stated reason: members
AWS returns only in another state, only when the request set them, or only for features the emulator
does not offer. The tests keep those lists next to the reasons, so a new member in botocore, or one
the emulator drops, shows up as a failure naming its path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, Shape, StructureShape

_MODELS: dict[str, Any] = {}


def service_model(service: str) -> Any:
    if service not in _MODELS:
        _MODELS[service] = botocore.session.get_session().get_service_model(service)
    return _MODELS[service]


def missing_members(
    service: str,
    operation: str,
    response: Mapping[str, Any],
    absent: Mapping[str, str],
    echoed: Mapping[str, frozenset[str]],
) -> list[str]:
    """Paths (``Shape.Member at a.b[0].c``) of output members ``response`` lacks.

    ``absent`` maps ``"<ShapeName>.<Member>"`` to why AWS leaves that member out in this state; those
    are not reported. ``echoed`` names the structures AWS returns as the request gave them (a
    ResourceConfig, a Channel): of those only the shape's required members and the ones listed (those
    AWS fills in itself, such as ``OutputDataConfig.KmsKeyId``) must be there. Keys of ``absent`` that
    name no member of any shape are reported too (a typo would otherwise excuse nothing and hide nothing).
    """
    shape = service_model(service).operation_model(operation).output_shape
    found: list[str] = []
    seen: set[str] = set()
    _walk(shape, response, operation, _Rules(absent, echoed), found, seen)
    unknown = [key for key in absent if key not in seen and not _is_member(service, key)]
    return found + [f"unknown exception {key}" for key in unknown]


def _is_member(service: str, key: str) -> bool:
    shape_name, _, member = key.partition(".")
    try:
        shape = service_model(service).shape_for(shape_name)
    except Exception:  # botocore's NoShapeFoundError
        return False
    return isinstance(shape, StructureShape) and member in shape.members


@dataclass(frozen=True)
class _Rules:
    absent: Mapping[str, str]
    echoed: Mapping[str, frozenset[str]]


def _walk(shape: Shape, value: Any, path: str, rules: _Rules, found: list[str], seen: set[str]) -> None:
    if isinstance(shape, StructureShape) and isinstance(value, Mapping):
        echoed = rules.echoed.get(shape.name)
        for name, member in shape.members.items():
            key = f"{shape.name}.{name}"
            if name in value:
                _walk(member, value[name], f"{path}.{name}", rules, found, seen)
            elif key in rules.absent:
                seen.add(key)
            elif echoed is None or name in echoed or name in shape.required_members:
                found.append(f"{key} at {path}")
    elif isinstance(shape, ListShape) and isinstance(value, list):
        for index, item in enumerate(value):
            _walk(shape.member, item, f"{path}[{index}]", rules, found, seen)
    elif isinstance(shape, MapShape) and isinstance(value, Mapping):
        for key, item in value.items():
            _walk(shape.value, item, f"{path}[{key}]", rules, found, seen)
