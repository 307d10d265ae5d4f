"""Identity-based policy evaluation: explicit Deny, then Allow, else the implicit deny.

AWS's logic (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
a request is allowed only if some statement allows it and none denies it. Action and Resource
(and NotAction/NotResource) match with ``*`` and ``?`` wildcards, actions case-insensitively.

moto's evaluator (``moto.iam.access_control.IAMPolicyStatement``) was the first choice and is not
used because, in moto 5.2: an Allow statement whose Condition does not match answers DENIED (an
explicit deny) instead of not applying; NotResource is ignored (the statement matches everything);
``?`` is not a wildcard. Conditions are evaluated here for the keys the local cloud knows
(``CONTEXT_KEYS``); a condition on any other key is treated the strict way: an Allow with it grants
nothing, a Deny with it applies.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Any

# The request-context keys the local cloud fills in (localcloud.iam.actions); docs/local.md lists them.
CONTEXT_KEYS = frozenset(
    {"aws:securetransport", "aws:requestedregion", "iam:passedtoservice", "cloudwatch:namespace"}
)


class Decision(Enum):
    ALLOWED = "allowed"
    IMPLICIT_DENY = "no identity-based policy allows"
    EXPLICIT_DENY = "explicit deny"


@dataclass(frozen=True)
class Check:
    """One authorization AWS makes for a request: an action on a resource, with context keys."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


@lru_cache(maxsize=4096)
def _wildcard(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    # fnmatch's translate also treats [...] as a class; IAM has no such thing, so escape brackets.
    escaped = pattern.replace("[", "\x00").replace("]", "\x01")
    regex = fnmatch.translate(escaped).replace("\x00", r"\[").replace("\x01", r"\]")
    return re.compile(regex, 0 if case_sensitive else re.IGNORECASE)


def _matches(patterns: Iterable[Any], value: str, case_sensitive: bool) -> bool:
    return any(_wildcard(str(p), case_sensitive).match(value) for p in patterns)


def _condition_holds(
    operator: str, key: str, expected: Sequence[str], context: Mapping[str, str]
) -> bool | None:
    """True/False for a condition the local cloud can evaluate, None for one it cannot."""
    if_exists = operator.endswith("IfExists")
    base = operator[: -len("IfExists")] if if_exists else operator
    key_l = key.lower()
    if base == "Null":
        present = key_l in context
        return any(str(e).lower() == str(not present).lower() for e in expected)
    if key_l not in CONTEXT_KEYS:
        return None
    if key_l not in context:
        # AWS: a missing key makes the condition false, except with ...IfExists (true).
        return if_exists
    actual = context[key_l]
    if base in ("StringEquals", "ArnEquals", "Bool"):
        return any(actual == str(e).lower() if base == "Bool" else actual == str(e) for e in expected)
    if base == "StringEqualsIgnoreCase":
        return any(actual.lower() == str(e).lower() for e in expected)
    if base in ("StringLike", "ArnLike"):
        return _matches(expected, actual, case_sensitive=True)
    if base in ("StringNotEquals", "ArnNotEquals"):
        return all(actual != str(e) for e in expected)
    if base in ("StringNotLike", "ArnNotLike"):
        return not _matches(expected, actual, case_sensitive=True)
    return None  # numeric, date, IP and set operators: not evaluated locally


def _conditions(statement: Mapping[str, Any], context: Mapping[str, str]) -> bool | None:
    """Whether every condition of the statement holds; None if one cannot be evaluated locally."""
    verdicts: list[bool | None] = []
    for operator, keys in (statement.get("Condition") or {}).items():
        for key, expected in (keys or {}).items():
            verdicts.append(_condition_holds(operator, key, [str(e) for e in _as_list(expected)], context))
    if any(v is False for v in verdicts):
        return False
    return None if any(v is None for v in verdicts) else True


def _applies(statement: Mapping[str, Any], check: Check) -> bool | None:
    if "NotAction" in statement:
        if _matches(_as_list(statement["NotAction"]), check.action, case_sensitive=False):
            return False
    elif not _matches(_as_list(statement.get("Action", [])), check.action, case_sensitive=False):
        return False
    if "NotResource" in statement:
        if _matches(_as_list(statement["NotResource"]), check.resource, case_sensitive=True):
            return False
    elif not _matches(_as_list(statement.get("Resource", [])), check.resource, case_sensitive=True):
        return False
    return _conditions(statement, {k.lower(): v for k, v in check.context.items()})


def evaluate(documents: Iterable[Mapping[str, Any]], check: Check) -> Decision:
    """The identity-based decision for one check against a principal's policy documents."""
    allowed = False
    for document in documents:
        for statement in _as_list(document.get("Statement", [])):
            applies = _applies(statement, check)
            if statement.get("Effect") == "Deny" and applies is not False:
                return Decision.EXPLICIT_DENY  # strict: a Deny we cannot fully evaluate applies
            if statement.get("Effect") == "Allow" and applies is True:
                allowed = True
    return Decision.ALLOWED if allowed else Decision.IMPLICIT_DENY


def missing_context_keys(documents: Iterable[Mapping[str, Any]], check: Check) -> list[str]:
    """The condition keys of the statements that match the check's action and resource, which the
    check's context does not supply (what IAM's policy simulator reports as ``MissingContextValues``)."""
    supplied = {key.lower() for key in check.context}
    missing: dict[str, str] = {}
    for document in documents:
        for statement in _as_list(document.get("Statement", [])):
            bare = {k: v for k, v in statement.items() if k != "Condition"}
            if _applies(bare, check) is not True:
                continue
            for keys in (statement.get("Condition") or {}).values():
                for key in keys or {}:
                    if key.lower() not in supplied:
                        missing.setdefault(key.lower(), key)
    return list(missing.values())
