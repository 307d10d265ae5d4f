"""SageMaker Debugger hook for train_model.py.

Where the Debugger config comes from (smdebug 1.0.34, smdebug/core/json_config.py): the file named by
env ``SMDEBUG_CONFIG_FILE_PATH``, else ``/opt/ml/input/config/debughookconfig.json``, which SageMaker
writes from the job's DebugHookConfig. When that file exists, ``smd.Hook.create_from_json_file()``
builds the hook (tensors go to its ``LocalPath``, default /opt/ml/output/tensors). When it does not
(smdebug raises FileNotFoundError there, it does not return None), this module builds a hook itself,
writing to ``<output_data_dir>/tensors`` with the collections the in-script rules need, so the rules
always have a trial to evaluate.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import smdebug.pytorch as smd
from smdebug import modes
from smdebug.core.config_constants import CONFIG_FILE_PATH_ENV_STR, DEFAULT_CONFIG_FILE_PATH

from dogclf.engine import Callbacks

# Activations are big: save ReLU inputs only for the first steps PoorWeightInitialization looks at.
RELU_INPUT_STEPS = 10


def debugger_config_path() -> Path | None:
    path = Path(os.environ.get(CONFIG_FILE_PATH_ENV_STR, DEFAULT_CONFIG_FILE_PATH))
    return path if path.is_file() else None


def create_hook(default_out_dir: Path) -> tuple[Any, str]:
    """(hook, where its config came from). Tensors land in the hook's out_dir."""
    config = debugger_config_path()
    if config is not None:
        return smd.Hook.create_from_json_file(str(config)), str(config)
    hook = smd.Hook(
        out_dir=str(default_out_dir),
        export_tensorboard=False,
        save_config=smd.SaveConfig(save_interval=1),
        include_collections=["losses", "gradients", "weights", "relu_input"],
    )
    hook.get_collection("weights").save_config = smd.SaveConfig(save_steps=[0])
    relu = hook.get_collection("relu_input")
    relu.include(".*relu_input")
    relu.save_config = smd.SaveConfig(end_step=RELU_INPUT_STEPS)
    return hook, "in-script default"


class DebuggerCallbacks(Callbacks):
    """Registers the hook on the trained module and the loss; switches TRAIN/EVAL modes."""

    def __init__(self, hook: Any, inner: Callbacks | None = None) -> None:
        self.hook = hook
        self.inner = inner or Callbacks()

    def on_model_ready(self, module, criterion) -> None:
        self.hook.register_module(module)
        self.hook.register_loss(criterion)
        self.inner.on_model_ready(module, criterion)

    def set_mode(self, mode: str) -> None:
        self.hook.set_mode(modes.TRAIN if mode == "train" else modes.EVAL)
        self.inner.set_mode(mode)

    def on_step(self, phase: str, data_seconds: float, compute_seconds: float) -> None:
        self.inner.on_step(phase, data_seconds, compute_seconds)

    def on_phase(self, phase: str, seconds: float) -> None:
        self.inner.on_phase(phase, seconds)
