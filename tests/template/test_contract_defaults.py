"""template.yaml's gate and debugger defaults are dogclf.contract's: one source, checked here."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
from template_loader import REPO

from dogclf import contract


def test_gate_blocking_rules_default_is_the_contracts(template: dict[str, Any]) -> None:
    default = template["Parameters"]["GateBlockingRules"]["Default"]
    assert tuple(default.split(",")) == contract.DEFAULT_BLOCKING_RULES


def test_debugger_mode_default_and_choices_are_the_contracts(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["DebuggerMode"]
    assert parameter["Default"] == contract.DEFAULT_DEBUGGER_MODE == contract.DEBUGGER_MODE_IN_SCRIPT
    assert sorted(parameter["AllowedValues"]) == sorted(contract.DEBUGGER_MODES)


def test_functions_receive_both_parameters(template: dict[str, Any]) -> None:
    environment = template["Globals"]["Function"]["Environment"]["Variables"]
    assert environment["GATE_BLOCKING_RULES"] == {"Ref": "GateBlockingRules"}
    assert environment["DEBUGGER_MODE"] == {"Ref": "DebuggerMode"}


@pytest.mark.parametrize("line", ["DebuggerMode", "GateBlockingRules"])
def test_samconfig_does_not_override_the_defaults_with_other_values(line: str) -> None:
    """samconfig.toml may repeat a default (sam deploy --guided writes them) but not change it."""
    overrides = tomllib.loads((REPO / "samconfig.toml").read_text())["default"]["deploy"]["parameters"].get(
        "parameter_overrides", ""
    )
    expected = {
        "DebuggerMode": contract.DEFAULT_DEBUGGER_MODE,
        "GateBlockingRules": ",".join(contract.DEFAULT_BLOCKING_RULES),
    }[line]
    for part in overrides.split():
        name, _, value = part.partition("=")
        if name == line:
            assert value.strip('"') == expected
