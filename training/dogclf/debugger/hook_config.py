"""The DebugHookConfig of the profiled job, sized from the dataset (standard library only).

smdebug's default save interval is 500 steps, so a dataset of a few thousand images keeps 2 or 3
steps and every rule "passes" on no data. This module picks, per collection and per mode, the save
interval that gives each rule at least ``MIN_RULE_STEPS`` saved steps while keeping the output
bounded. What each in-script rule (``dogclf.debugger.rules``) reads decides what is saved:

- ``losses`` (a scalar per step): Overfit, Overtraining, LossNotDecreasing and
  PoorWeightInitialization. Saved at every step of every mode.
- ``gradients`` (TRAIN only; the frozen backbone has none, so these are the head's few parameters):
  VanishingGradient at the saved interval, PoorWeightInitialization over the first
  ``MIN_RULE_STEPS`` training steps (``train.save_steps``).
- ``relu_input`` (TRAIN, first ``MIN_RULE_STEPS`` steps): PoorWeightInitialization's per-layer
  variance. Full ResNet activations are tens of MB per layer and step, so only the ``variance`` and
  ``mean`` reductions are saved (a scalar each).
- ``head_activations`` (TRAIN, first ``MIN_RULE_STEPS`` steps): the head Linear's input and output
  (``HEAD_ACTIVATIONS_REGEX``), ``variance`` and ``mean`` reductions: PoorWeightInitialization's
  variance ratio on the layer that training initialises (the linear head has no ReLU).
- ``grad_scale`` (fp16 only, at the gradients' steps): the loss scale the saved gradients carry.
- ``weights``/``biases``: no rule reads them; reductions only, a handful of times per run, for a
  curve in the trial. Full ResNet18 weights plus gradients at every step would be about 88 MB/step.

Step counts: smdebug numbers steps per mode. TRAIN steps = ceil(train / batch) x epochs, EVAL
(validation) steps = ceil(valid / batch) x epochs; the test split runs in PREDICT mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dogclf.contract import MIN_RULE_STEPS

__all__ = ["MIN_RULE_STEPS", "SavePlan", "debug_hook_config", "save_plan"]

# Gradients: the saved steps VanishingGradient reads (2x the minimum, so sampling never drops below).
GRADIENT_SAVES = 2 * MIN_RULE_STEPS
# Weight/bias reductions: a few points per run are enough to see them move.
WEIGHT_SAVES = 10
RELU_INPUT_REGEX = ".*relu_input"
# The input (batch-normalised features) and output (logits) of the head's Linear layer
# (dogclf.model: head = BatchNorm1d, Linear): the activations of the one layer that training
# initialises. PoorWeightInitialization compares their variances (a head initialised at a bad scale
# puts the logits' variance orders of magnitude from its input's); saved as reductions like relu_input.
HEAD_ACTIVATIONS = "head_activations"
HEAD_ACTIVATIONS_REGEX = r"^head\.1_(input|output)_0$"
# fp16 (T4): the hook sees gradients multiplied by the GradScaler's loss scale; train_model.py records
# the scale under this name ("grad_scale_output_0": neither the losses' nor the gradients' regex).
GRAD_SCALE = "grad_scale"
# Rules read the full gradient values (percentiles, |mean|) but only statistics of activations.
RELU_INPUT_REDUCTIONS = "variance,mean"
WEIGHT_REDUCTIONS = "mean,std,l2_norm"
NEVER = "0"  # end_step 0: smdebug saves steps with start <= step < end, i.e. none


@dataclass(frozen=True)
class SavePlan:
    """Planned steps per mode and the intervals chosen from them."""

    train_steps: int
    eval_steps: int
    gradient_interval: int
    weight_interval: int
    early_steps: int  # first TRAIN steps with gradients and ReLU inputs (PoorWeightInitialization)

    def saved_train_steps(self, interval: int) -> int:
        return math.ceil(self.train_steps / interval) if self.train_steps else 0

    def rule_steps(self) -> dict[str, int]:
        """Saved steps each rule will read (what its verdict rests on when training runs as planned)."""
        gradient_steps = len(
            {s for s in range(self.train_steps) if s % self.gradient_interval == 0 or s < self.early_steps}
        )
        return {
            "VanishingGradient": gradient_steps,
            "Overfit": self.train_steps + self.eval_steps,
            "Overtraining": self.train_steps + self.eval_steps,
            "PoorWeightInitialization": min(self.train_steps, self.early_steps),
            "LossNotDecreasing": self.train_steps,
        }


def _steps(examples: int, batch_size: int, epochs: int) -> int:
    return math.ceil(examples / batch_size) * epochs if examples > 0 else 0


def _interval(steps: int, saves: int) -> int:
    """Largest interval that still saves ``saves`` steps; 1 (every step) when the run is shorter."""
    return max(1, steps // saves)


def save_plan(*, train_examples: int, batch_size: int, epochs: int, valid_examples: int = 0) -> SavePlan:
    for name, value in (("train_examples", train_examples), ("batch_size", batch_size), ("epochs", epochs)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(valid_examples, int) or valid_examples < 0:
        raise ValueError(f"valid_examples must be a non-negative integer, got {valid_examples!r}")
    train_steps = _steps(train_examples, batch_size, epochs)
    return SavePlan(
        train_steps=train_steps,
        eval_steps=_steps(valid_examples, batch_size, epochs),
        gradient_interval=_interval(train_steps, GRADIENT_SAVES),
        weight_interval=_interval(train_steps, WEIGHT_SAVES),
        early_steps=MIN_RULE_STEPS,
    )


def _train_only(**train: str) -> dict[str, str]:
    """Collection parameters that save in TRAIN mode only."""
    return {
        **{f"train.{key}": value for key, value in train.items()},
        "eval.end_step": NEVER,
        "predict.end_step": NEVER,
        "global.end_step": NEVER,
    }


def debug_hook_config(
    *, train_examples: int, batch_size: int, epochs: int, valid_examples: int = 0
) -> dict[str, Any]:
    """DebugHookConfig (HookParameters + CollectionConfigurations) without S3OutputPath/LocalPath.

    All parameter values are strings, as CreateTrainingJob requires.
    """
    plan = save_plan(
        train_examples=train_examples, batch_size=batch_size, epochs=epochs, valid_examples=valid_examples
    )
    early = ",".join(str(step) for step in range(plan.early_steps))
    weights = _train_only(save_interval=str(plan.weight_interval))
    gradient_steps = _train_only(save_interval=str(plan.gradient_interval), save_steps=early)
    return {
        "HookParameters": {"save_interval": "1"},
        "CollectionConfigurations": [
            {"CollectionName": "losses", "CollectionParameters": {"save_interval": "1"}},
            {"CollectionName": "gradients", "CollectionParameters": gradient_steps},
            {
                "CollectionName": GRAD_SCALE,
                "CollectionParameters": {"include_regex": f"^{GRAD_SCALE}", **gradient_steps},
            },
            {
                "CollectionName": "relu_input",
                "CollectionParameters": {
                    "include_regex": RELU_INPUT_REGEX,
                    "reductions": RELU_INPUT_REDUCTIONS,
                    **_train_only(save_interval="1", end_step=str(plan.early_steps)),
                },
            },
            {
                "CollectionName": HEAD_ACTIVATIONS,
                "CollectionParameters": {
                    "include_regex": HEAD_ACTIVATIONS_REGEX,
                    "reductions": RELU_INPUT_REDUCTIONS,
                    **_train_only(save_interval="1", end_step=str(plan.early_steps)),
                },
            },
            {
                "CollectionName": "weights",
                "CollectionParameters": {"reductions": WEIGHT_REDUCTIONS, **weights},
            },
            {
                "CollectionName": "biases",
                "CollectionParameters": {"reductions": WEIGHT_REDUCTIONS, **weights},
            },
        ],
    }
