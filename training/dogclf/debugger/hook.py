"""SageMaker Debugger hook for train_model.py, registered on the full model.

Where the Debugger config comes from (smdebug 1.0.34, smdebug/core/json_config.py): the file named by
env ``SMDEBUG_CONFIG_FILE_PATH``, else ``/opt/ml/input/config/debughookconfig.json``, which SageMaker
writes from the job's DebugHookConfig. When that file exists, ``smd.Hook.create_from_json_file()``
builds the hook (tensors go to its ``LocalPath``, default /opt/ml/output/tensors). When it does not
(smdebug raises FileNotFoundError there, it does not return None), the hook is built from the same
``debug_hook_config`` the Lambda sends, sized from this job's dataset, and writes to
``<output_data_dir>/tensors``: the rules always have a trial, saved the same way as on SageMaker.

The hook is created once the dataset is known (``on_dataset``) and registered on the module that
runs forward (``on_model_ready``): with the feature cache off that is the whole ResNet18, so the
``relu_input`` collection holds the backbone's activations.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import smdebug.pytorch as smd
import torch
from smdebug import modes
from smdebug.core.config_constants import CONFIG_FILE_PATH_ENV_STR, DEFAULT_CONFIG_FILE_PATH
from torch import nn

from dogclf.debugger.hook_config import GRAD_SCALE, debug_hook_config
from dogclf.loop import Callbacks

# Engine split -> smdebug mode. The test split runs in PREDICT mode so that EVAL holds only the
# validation passes that Overfit and Overtraining compare with training.
SPLIT_MODES = {"train": modes.TRAIN, "valid": modes.EVAL, "test": modes.PREDICT}
IN_SCRIPT_CONFIG_FILE = "debughookconfig.json"


def debugger_config_path() -> Path | None:
    path = Path(os.environ.get(CONFIG_FILE_PATH_ENV_STR, DEFAULT_CONFIG_FILE_PATH))
    return path if path.is_file() else None


def write_in_script_config(
    output_dir: Path, *, train_examples: int, valid_examples: int, batch_size: int, epochs: int
) -> Path:
    """The Lambda's hook config for this dataset, with LocalPath ``<output_dir>/tensors``."""
    config = debug_hook_config(
        train_examples=train_examples, valid_examples=valid_examples, batch_size=batch_size, epochs=epochs
    )
    config["LocalPath"] = str(output_dir / "tensors")
    path = output_dir / IN_SCRIPT_CONFIG_FILE
    path.write_text(json.dumps(config, indent=2))
    return path


class DebuggerCallbacks(Callbacks):
    """Creates the hook, registers it on the trained module and the loss; switches modes per split."""

    def __init__(self, output_dir: Path, *, world_size: int = 1, inner: Callbacks | None = None) -> None:
        self.output_dir = output_dir
        self.world_size = world_size
        self.inner = inner or Callbacks()
        self.config_path = debugger_config_path()
        self.source = str(self.config_path) if self.config_path else "in-script default"
        self.hook: Any = None

    def on_dataset(self, counts: dict[str, int], batch_size: int, epochs: int) -> None:
        if self.config_path is None:
            # Steps per rank: each rank sees its shard of the split.
            self.config_path = write_in_script_config(
                self.output_dir,
                train_examples=max(1, -(-counts["train"] // self.world_size)),
                valid_examples=-(-counts["valid"] // self.world_size),
                batch_size=batch_size,
                epochs=epochs,
            )
        self.hook = smd.Hook.create_from_json_file(str(self.config_path))
        print(f"Debugger hook from {self.source}, tensors in {self.hook.out_dir}", flush=True)
        self.inner.on_dataset(counts, batch_size, epochs)

    def on_model_ready(self, module: nn.Module, criterion: nn.Module) -> None:
        if self.hook is not None:
            self.hook.register_module(module)
            self.hook.register_loss(criterion)
        self.inner.on_model_ready(module, criterion)

    def set_mode(self, mode: str) -> None:
        if self.hook is not None:
            self.hook.set_mode(SPLIT_MODES[mode])
        self.inner.set_mode(mode)

    def on_scaled_backward(self, loss_scale: float) -> None:
        # The hook saved this step's gradients multiplied by the fp16 loss scale: save the scale next
        # to them (collection GRAD_SCALE) so that the rules can divide it out.
        if self.hook is not None:
            self.hook.record_tensor_value(GRAD_SCALE, torch.tensor(float(loss_scale)))
        self.inner.on_scaled_backward(loss_scale)

    def on_step(self, phase: str, data_seconds: float, compute_seconds: float) -> None:
        self.inner.on_step(phase, data_seconds, compute_seconds)

    def on_phase(self, phase: str, seconds: float) -> None:
        self.inner.on_phase(phase, seconds)

    def close(self) -> None:
        if self.hook is not None:
            self.hook.close()
