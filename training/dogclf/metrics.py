"""Metric lines for SageMaker's MetricDefinitions (regexes in metric_definitions.json).

Format: ``#metric <name>=<value>;`` on its own line, one per metric, value as a plain float.
SageMaker takes each regex's first capture group on every matching log line; the final value of
a metric is the last line emitted, so the tuning objective valid:accuracy ends at the last epoch.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DEFINITIONS_PATH = Path(__file__).with_name("metric_definitions.json")


def load_definitions() -> dict[str, Any]:
    return json.loads(DEFINITIONS_PATH.read_text())


def format_metric(name: str, value: float) -> str:
    return f"#metric {name}={float(value):.6g};"


def emit(name: str, value: float) -> None:
    print(format_metric(name, value), flush=True)


def parse_log(text: str, definitions: dict[str, Any] | None = None) -> dict[str, list[float]]:
    """Every value each MetricDefinition's regex finds in a log, in order (what SageMaker records)."""
    definitions = definitions or load_definitions()
    found: dict[str, list[float]] = {}
    for definition in definitions["MetricDefinitions"]:
        pattern = re.compile(definition["Regex"])
        values = [float(match.group(1)) for match in pattern.finditer(text)]
        if values:
            found[definition["Name"]] = values
    return found
