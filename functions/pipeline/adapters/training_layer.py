"""Access to the training-code layer (training/ in the repo, /opt in Lambda): layout rule and metrics.

The dataset layout rule and the metric definitions live with the training code, so the functions
import/read them from ``TRAINING_CODE_DIR`` instead of keeping copies that could drift. The modules are
imported by name, the one way: ``pipeline/__init__.py`` makes the layer importable in Lambda, the
editable install of training/ everywhere else. Each is imported on first use, not at module level:
``images`` imports Pillow, which only code that decodes pixels (classify's downscale) should pay for.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any


class TrainingCodeError(RuntimeError):
    """The training-code layer is missing or incomplete."""


def _layer_module(training_code_dir: Path, name: str) -> ModuleType:
    """``dogclf.<name>``, after checking that the layer at `training_code_dir` has it (a clear error
    naming TRAINING_CODE_DIR rather than an ImportError when the layer is missing)."""
    if not (training_code_dir / "dogclf" / f"{name}.py").is_file():
        raise TrainingCodeError(f"dogclf/{name}.py not found under TRAINING_CODE_DIR={training_code_dir}")
    return importlib.import_module(f"dogclf.{name}")


def layout_module(training_code_dir: Path) -> ModuleType:
    """``dogclf.layout`` from the layer (its ``locate``, ``summarize``, ``DatasetLayoutError``...)."""
    return _layer_module(training_code_dir, "layout")


def contract_module(training_code_dir: Path) -> ModuleType:
    """``dogclf.contract`` from the layer: the limits, names and matchers training also uses."""
    return _layer_module(training_code_dir, "contract")


def images_module(training_code_dir: Path) -> ModuleType:
    """``dogclf.images`` from the layer: the decoder (and pixel limit) training and serving use."""
    return _layer_module(training_code_dir, "images")


def metric_definitions(training_code_dir: Path) -> dict[str, Any]:
    """dogclf/metric_definitions.json: MetricDefinitions, HyperParameterTuningJobObjective, GateMetric."""
    path = training_code_dir / "dogclf" / "metric_definitions.json"
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise TrainingCodeError(f"{path} not found (TRAINING_CODE_DIR={training_code_dir})") from error
    missing = {"MetricDefinitions", "HyperParameterTuningJobObjective", "GateMetric"} - set(document)
    if missing:
        raise TrainingCodeError(f"{path} lacks {', '.join(sorted(missing))}")
    return document
