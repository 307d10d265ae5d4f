"""The seed notebook's settings and helpers, shared by the SDK suite's tests and fixtures."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

import sagemaker
from sagemaker.debugger import FrameworkProfile, ProfilerConfig, ProfilerRule, Rule, rule_configs
from sagemaker.pytorch import PyTorch

REPO = Path(__file__).resolve().parents[2]
TRAINING_DIR = str(REPO / "training")
from pipeline.source_dir import PROFILED, write_tree  # noqa: E402
from tests.sdk.settings import (  # noqa: E402
    FRAMEWORK,
    PY_VERSION,
    TRAINING_INSTANCE,
)

# The seed's DebuggerHookConfig(hook_parameters=...).
SEED_HOOK_PARAMETERS: dict[str, Any] = {"train.save_interval": "100", "eval.save_interval": "10"}


@functools.cache
def source_dir() -> str:
    """training/ as the pipeline ships it to the profiled job (requirements.txt behind ``--no-index
    --find-links wheels`` and the wheels of ``make training-wheels``): the local cloud, like an account
    whose jobs cannot reach a package index, refuses any install from the index, so the notebook passes
    this folder, not training/ itself, as ``source_dir``."""
    folder = Path(tempfile.mkdtemp(prefix="sdk-source-dir-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return str(write_tree(Path(TRAINING_DIR), folder, PROFILED))


def seed_profiler_config() -> ProfilerConfig:
    return ProfilerConfig(
        system_monitor_interval_millis=500, framework_profile_params=FrameworkProfile(num_steps=10)
    )


def seed_rules() -> list[Any]:
    """The seed's four Debugger rules and its ProfilerReport."""
    return [
        Rule.sagemaker(rule_configs.vanishing_gradient()),
        Rule.sagemaker(rule_configs.overfit()),
        Rule.sagemaker(rule_configs.overtraining()),
        Rule.sagemaker(rule_configs.poor_weight_initialization()),
        ProfilerRule.sagemaker(rule_configs.ProfilerReport()),
    ]


def pytorch_estimator(session: sagemaker.Session, role: str, entry_point: str, **options: Any) -> PyTorch:
    return PyTorch(
        entry_point=entry_point,
        source_dir=source_dir(),
        role=role,
        framework_version=FRAMEWORK,
        py_version=PY_VERSION,
        instance_count=1,
        instance_type=TRAINING_INSTANCE,
        sagemaker_session=session,
        **options,
    )
