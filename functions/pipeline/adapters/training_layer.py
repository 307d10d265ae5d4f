"""Access to the training-code layer (training/ in the repo, /opt in Lambda): layout rule and metrics.

The dataset layout rule and the metric definitions live with the training code, so the functions
import/read them from ``TRAINING_CODE_DIR`` instead of keeping copies that could drift.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any


class TrainingCodeError(RuntimeError):
    """The training-code layer is missing or incomplete."""


def layout_module(training_code_dir: Path) -> ModuleType:
    """``dogclf.layout`` from the layer (its ``locate``, ``summarize``, ``DatasetLayoutError``...)."""
    if not (training_code_dir / "dogclf" / "layout.py").is_file():
        raise TrainingCodeError(f"dogclf/layout.py not found under TRAINING_CODE_DIR={training_code_dir}")
    path = str(training_code_dir)
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module("dogclf.layout")


def contract_module(training_code_dir: Path) -> ModuleType:
    """``dogclf.contract`` from the layer: the limits, names and matchers training also uses."""
    if not (training_code_dir / "dogclf" / "contract.py").is_file():
        raise TrainingCodeError(f"dogclf/contract.py not found under TRAINING_CODE_DIR={training_code_dir}")
    path = str(training_code_dir)
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module("dogclf.contract")


def images_module(training_code_dir: Path) -> ModuleType:
    """``dogclf.images`` from the layer: the decoder (and pixel limit) training and serving use.
    It imports Pillow, so only code that decodes pixels (classify's downscale) calls this."""
    if not (training_code_dir / "dogclf" / "images.py").is_file():
        raise TrainingCodeError(f"dogclf/images.py not found under TRAINING_CODE_DIR={training_code_dir}")
    path = str(training_code_dir)
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module("dogclf.images")


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
