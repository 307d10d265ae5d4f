"""The request-snapshot helper itself (request_snapshots.py): a mismatch fails with a diff and the way
to regenerate, the update flag rewrites, an invalid request fails botocore's validation either way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from botocore.exceptions import ParamValidationError
from request_snapshots import (
    REGENERATE,
    SNAPSHOT_DIR,
    RequestSnapshots,
    load_snapshot,
    render,
    update_requested,
)

TESTS = Path(__file__).resolve().parent

# A small valid UpdateEndpoint input is enough for the helper; the file text is
# written out so the format (sorted keys, indent 2, trailing newline) is checked, not re-derived.
REQUEST = {"EndpointName": "dogclf-endpoint", "EndpointConfigName": "dogclf-train-aaaaaaaaaaaa-cfg"}
REQUEST_TEXT = (
    '{\n  "EndpointConfigName": "dogclf-train-aaaaaaaaaaaa-cfg",\n  "EndpointName": "dogclf-endpoint"\n}\n'
)


def test_the_update_flag_writes_the_snapshot_in_a_stable_format(tmp_path: Path) -> None:
    RequestSnapshots(update=True, directory=tmp_path).check("update", REQUEST, "UpdateEndpoint")
    assert (tmp_path / "update.json").read_text() == REQUEST_TEXT
    # Comparing afterwards passes, and reading gives the request back.
    RequestSnapshots(update=False, directory=tmp_path).check("update", REQUEST, "UpdateEndpoint")
    assert load_snapshot("update", tmp_path) == REQUEST


def test_the_update_flag_rewrites_a_stale_snapshot(tmp_path: Path) -> None:
    (tmp_path / "update.json").write_text('{"EndpointName": "old", "EndpointConfigName": "old-cfg"}\n')
    RequestSnapshots(update=True, directory=tmp_path).check("update", REQUEST, "UpdateEndpoint")
    assert (tmp_path / "update.json").read_text() == REQUEST_TEXT


def test_a_mismatch_fails_with_a_diff_and_says_how_to_regenerate(tmp_path: Path) -> None:
    (tmp_path / "update.json").write_text(REQUEST_TEXT)
    changed = {**REQUEST, "EndpointConfigName": "dogclf-train-bbbbbbbbbbbb-cfg"}
    with pytest.raises(pytest.fail.Exception) as failure:
        RequestSnapshots(update=False, directory=tmp_path).check("update", changed, "UpdateEndpoint")
    message = str(failure.value)
    assert "UpdateEndpoint request differs from its snapshot 'update'" in message
    assert '-  "EndpointConfigName": "dogclf-train-aaaaaaaaaaaa-cfg",\n' in message
    assert '+  "EndpointConfigName": "dogclf-train-bbbbbbbbbbbb-cfg",\n' in message
    assert REGENERATE in message and "--update-snapshots" in message
    assert (tmp_path / "update.json").read_text() == REQUEST_TEXT  # comparing never writes


def test_key_order_is_no_difference(tmp_path: Path) -> None:
    (tmp_path / "update.json").write_text(REQUEST_TEXT)
    reordered = dict(reversed(list(REQUEST.items())))
    RequestSnapshots(update=False, directory=tmp_path).check("update", reordered, "UpdateEndpoint")


def test_a_missing_snapshot_fails_and_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match=r"no request snapshot .*--update-snapshots"):
        RequestSnapshots(update=False, directory=tmp_path).check("update", REQUEST, "UpdateEndpoint")
    with pytest.raises(pytest.fail.Exception, match="no request snapshot"):
        load_snapshot("update", tmp_path)


@pytest.mark.parametrize("update", [False, True])
def test_an_invalid_request_fails_botocore_validation_and_is_never_written(
    tmp_path: Path, update: bool
) -> None:
    (tmp_path / "update.json").write_text(REQUEST_TEXT)
    invalid = {**REQUEST, "EndpointConfigName": 7, "RetainAllVariantProperties": "yes"}
    with pytest.raises(ParamValidationError, match="EndpointConfigName"):
        RequestSnapshots(update=update, directory=tmp_path).check("update", invalid, "UpdateEndpoint")
    with pytest.raises(ParamValidationError, match="Missing required parameter"):
        RequestSnapshots(update=update, directory=tmp_path).check("update", {}, "UpdateEndpoint")
    assert (tmp_path / "update.json").read_text() == REQUEST_TEXT


def test_two_different_requests_under_one_name_fail_the_update(tmp_path: Path) -> None:
    snapshots = RequestSnapshots(update=True, directory=tmp_path)
    snapshots.check("update", REQUEST, "UpdateEndpoint")
    with pytest.raises(pytest.fail.Exception, match="two different requests were snapshotted as 'update'"):
        snapshots.check("update", {**REQUEST, "EndpointName": "other"}, "UpdateEndpoint")


def test_the_flag_is_the_option_or_the_environment_variable() -> None:
    assert update_requested(True, {})
    assert update_requested(False, {"UPDATE_SNAPSHOTS": "1"})
    assert not update_requested(False, {})
    assert not update_requested(False, {"UPDATE_SNAPSHOTS": "0"})


def test_every_snapshot_file_is_in_the_stable_format_and_written_by_a_test() -> None:
    """No orphan files: each snapshot is named by a test module here (whose test writes it)."""
    files = sorted(SNAPSHOT_DIR.glob("*.json"))
    assert files
    sources = "\n".join(
        path.read_text() for path in TESTS.glob("test_*.py") if path.name != Path(__file__).name
    )
    for path in files:
        assert render(json.loads(path.read_text())) == path.read_text(), path.name
        assert f'"{path.stem}"' in sources, f"{path.name}: no test names it"
