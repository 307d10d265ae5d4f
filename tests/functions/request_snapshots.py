"""Request snapshots: a whole AWS request the functions build, kept as a JSON file and compared with
what the code builds now.

Each request kind has one file, tests/fixtures/requests/<name>.json (keys sorted, indent 2, a trailing
newline), written by one test (``RequestSnapshots.check``) and read by any test that needs the same
request, e.g. as a Stubber's expected params (``load_snapshot``). Before comparing, the built request
is checked against the operation's input shape in botocore's service model, so a snapshot only ever
holds a request AWS's API would accept. A snapshot pins everything; the fields that carry a decision
are also asserted by name in the test, so that regenerating a snapshot cannot quietly accept a wrong
decision.

Regenerate (then review the files' git diff): ``--update-snapshots`` on any pytest run that reaches
the writing tests (registered in tests/conftest.py), or UPDATE_SNAPSHOTS=1 in the environment.
Values that differ from run to run (a content-hashed source dir) are the caller's to replace before
a request is snapshotted; nothing here rewrites a request.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.model import ServiceModel
from botocore.validate import validate_parameters

REPO = Path(__file__).resolve().parents[2]
SNAPSHOT_DIR = REPO / "tests" / "fixtures" / "requests"
UPDATE_ENV = "UPDATE_SNAPSHOTS"
REGENERATE = (
    "make test-fast-app PYTEST_ARGS=--update-snapshots "
    "(or: .venv/bin/python -m pytest tests/functions --update-snapshots; or UPDATE_SNAPSHOTS=1), "
    "then review the snapshot's git diff"
)
# What this process wrote under --update-snapshots, by file.
_WRITTEN: dict[Path, str] = {}


@cache
def _service_model(service: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(service)


def validate_request(request: Mapping[str, Any], operation: str, service: str = "sagemaker") -> None:
    """Raise botocore's ParamValidationError unless ``request`` is valid input of ``operation``."""
    shape = _service_model(service).operation_model(operation).input_shape
    validate_parameters(dict(request), shape)


def render(request: Mapping[str, Any]) -> str:
    """The file's text: sorted keys, so a reordering in the code changes no snapshot."""
    return json.dumps(request, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def snapshot_path(name: str, directory: Path = SNAPSHOT_DIR) -> Path:
    return directory / f"{name}.json"


def load_snapshot(name: str, directory: Path = SNAPSHOT_DIR) -> dict[str, Any]:
    """A snapshot's request, a fresh copy each call (callers may change it, e.g. to put Stubber's ANY
    where a value is not deterministic)."""
    path = snapshot_path(name, directory)
    if not path.exists():
        pytest.fail(f"no request snapshot {path}: create it with {REGENERATE}", pytrace=False)
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def update_requested(option: bool, environ: Mapping[str, str] = os.environ) -> bool:
    """The --update-snapshots option, or UPDATE_SNAPSHOTS=1 (for runs whose command line is fixed)."""
    return option or environ.get(UPDATE_ENV, "") == "1"


@dataclass
class RequestSnapshots:
    """Compares built requests with their snapshots, or (``update``) rewrites the snapshots."""

    update: bool
    directory: Path = SNAPSHOT_DIR

    def check(
        self, name: str, request: Mapping[str, Any], operation: str, service: str = "sagemaker"
    ) -> None:
        validate_request(request, operation, service)
        text = render(request)
        path = snapshot_path(name, self.directory)
        if self.update:
            # One request kind, one file: two different requests written under one name would leave
            # whichever ran last (in this process; each file has one writing test).
            if _WRITTEN.setdefault(path, text) != text:
                pytest.fail(f"two different requests were snapshotted as {name!r}", pytrace=False)
            if not path.exists() or path.read_text() != text:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
            return
        if not path.exists():
            pytest.fail(f"no request snapshot {path}: create it with {REGENERATE}", pytrace=False)
        stored = path.read_text()
        if json.loads(stored) == json.loads(text):
            return
        diff = "".join(
            difflib.unified_diff(
                render(json.loads(stored)).splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path} (snapshot)",
                tofile=f"{operation} request built now",
            )
        )
        pytest.fail(
            f"the {operation} request differs from its snapshot {name!r}:\n{diff}\n"
            f"If the change is intended, regenerate it: {REGENERATE}.",
            pytrace=False,
        )
