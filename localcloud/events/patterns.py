"""EventBridge event-pattern matching, as AWS documents it.

See https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html: every field
named in the pattern must match; a list of values matches if any value matches; when the event's
value is an array, the field matches if any element matches. Value filters supported: literals
(string, number, boolean, null), ``prefix``, ``suffix``, ``anything-but`` (value, list, or
``{"prefix"|"suffix"|"equals-ignore-case"|"wildcard": ...}``), ``exists``, ``numeric``,
``equals-ignore-case``, ``wildcard`` and ``$or``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_MISSING = object()


class PatternError(ValueError):
    """The pattern is not a valid EventBridge pattern."""


def matches_event_pattern(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """True when ``event`` matches the EventBridge ``pattern``."""
    if not isinstance(pattern, Mapping):
        raise PatternError(f"an event pattern must be an object, got {type(pattern).__name__}")
    for key, expected in pattern.items():
        if key == "$or":
            if not isinstance(expected, list) or not expected:
                raise PatternError("$or takes a non-empty list of patterns")
            if not any(matches_event_pattern(sub, event) for sub in expected):
                return False
            continue
        actual = event.get(key, _MISSING) if isinstance(event, Mapping) else _MISSING
        if isinstance(expected, Mapping):
            # A nested object pattern only matches a nested object.
            if not isinstance(actual, Mapping) or not matches_event_pattern(expected, actual):
                return False
        elif isinstance(expected, list):
            if not _field_matches(expected, actual):
                return False
        else:
            raise PatternError(f"pattern value for {key!r} must be a list or an object, got {expected!r}")
    return True


def _field_matches(filters: list[Any], actual: Any) -> bool:
    for value_filter in filters:
        if isinstance(value_filter, Mapping) and "exists" in value_filter:
            # exists is about the field, not about elements of an array.
            present = actual is not _MISSING
            if present == bool(value_filter["exists"]):
                return True
            continue
        if actual is _MISSING:
            continue
        values = actual if isinstance(actual, list) else [actual]
        if isinstance(value_filter, Mapping) and "anything-but" in value_filter:
            if any(_anything_but(value_filter["anything-but"], v) for v in values):
                return True
            continue
        if any(_value_matches(value_filter, v) for v in values):
            return True
    return False


def _literal_equal(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if expected is None or actual is None:
        return expected is None and actual is None
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return float(expected) == float(actual)
    if isinstance(expected, str) and isinstance(actual, str):
        return expected == actual
    return False


def _value_matches(value_filter: Any, actual: Any) -> bool:
    if not isinstance(value_filter, Mapping):
        return _literal_equal(value_filter, actual)
    if len(value_filter) != 1:
        raise PatternError(f"a value filter has exactly one key: {dict(value_filter)!r}")
    ((kind, arg),) = value_filter.items()
    if kind == "prefix":
        if isinstance(arg, Mapping) and "equals-ignore-case" in arg:
            return isinstance(actual, str) and actual.lower().startswith(
                str(arg["equals-ignore-case"]).lower()
            )
        return isinstance(actual, str) and actual.startswith(arg)
    if kind == "suffix":
        if isinstance(arg, Mapping) and "equals-ignore-case" in arg:
            return isinstance(actual, str) and actual.lower().endswith(str(arg["equals-ignore-case"]).lower())
        return isinstance(actual, str) and actual.endswith(arg)
    if kind == "equals-ignore-case":
        return isinstance(actual, str) and actual.lower() == str(arg).lower()
    if kind == "wildcard":
        return isinstance(actual, str) and _wildcard(arg, actual)
    if kind == "numeric":
        return _numeric(arg, actual)
    if kind == "cidr":
        raise PatternError("cidr filters are not supported locally")
    raise PatternError(f"unknown value filter {kind!r}")


def _anything_but(arg: Any, actual: Any) -> bool:
    if isinstance(arg, Mapping):
        ((kind, inner),) = arg.items()
        if kind == "prefix":
            return not (isinstance(actual, str) and actual.startswith(inner))
        if kind == "suffix":
            return not (isinstance(actual, str) and actual.endswith(inner))
        if kind == "equals-ignore-case":
            options = inner if isinstance(inner, list) else [inner]
            return not (isinstance(actual, str) and actual.lower() in [str(o).lower() for o in options])
        if kind == "wildcard":
            options = inner if isinstance(inner, list) else [inner]
            return not (isinstance(actual, str) and any(_wildcard(o, actual) for o in options))
        raise PatternError(f"unsupported anything-but filter {kind!r}")
    options = arg if isinstance(arg, list) else [arg]
    return not any(_literal_equal(option, actual) for option in options)


_NUMERIC_OPERATORS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "=": lambda a, b: a == b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _numeric(arg: list[Any], actual: Any) -> bool:
    if isinstance(actual, bool) or not isinstance(actual, int | float):
        return False
    if len(arg) % 2 != 0:
        raise PatternError(f"numeric takes operator/value pairs: {arg!r}")
    for operator, bound in zip(arg[::2], arg[1::2], strict=True):
        if operator not in _NUMERIC_OPERATORS:
            raise PatternError(f"unknown numeric operator {operator!r}")
        if not _NUMERIC_OPERATORS[operator](float(actual), float(bound)):
            return False
    return True


def _wildcard(pattern: str, actual: str) -> bool:
    # EventBridge wildcards: only "*" is special ("\*" is a literal star).
    regex = "".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern))
    return re.fullmatch(regex, actual, flags=re.DOTALL) is not None
