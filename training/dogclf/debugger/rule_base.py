"""What the in-script rules share: tensor lookup, the loss series by mode and by pass, and the
figure/threshold/steps every verdict reports (see dogclf.debugger.rules for the rules' semantics)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from smdebug.core.modes import ModeKeys
from smdebug.exceptions import TensorUnavailableForStep
from smdebug.rules.rule import Rule

from dogclf.debugger.hook_config import GRAD_SCALE

# Below this training loss a run has converged: near-zero gradients and a flat loss are what a
# converged run looks like, not a fault.
CONVERGED_LOSS = 1e-3
# LossNotDecreasing: a loss that has fallen below this fraction of where it started has converged too.
# With weight decay a head's loss levels off above 0 (the demo's: 0.0307 after 0.0308, test accuracy
# 1.0, from about 1.1 at step 0), so a flat loss there is the optimum reached, not training that
# failed; a run that does not learn stays near its start, far above this band.
CONVERGED_FRACTION_OF_START = 0.05
# Without validation passes the trial has no epoch boundaries: training losses are then judged in
# windows of this many steps (AWS's num_steps default for LossNotDecreasing).
FALLBACK_WINDOW = 10

# One run of consecutive steps of one mode: (mode, [(global step, loss)]).
LossRun = tuple[ModeKeys, list[tuple[int, float]]]


class TrialRule(Rule):
    """Shared helpers: tensor lookup by collection, values by mode, the steps read, what was judged."""

    def __init__(self, base_trial: Any) -> None:
        super().__init__(base_trial, action_str="")
        self.detail = ""
        self.checks = 0  # comparisons made against the rule's condition
        self.steps_read: set[int] = set()  # global steps whose saved tensors the rule read
        # What the verdict shows the user: the figure last (or decisively) judged and its threshold.
        self.figure = ""
        self.threshold_text = ""
        self._scale_names: list[str] | None = None

    def judged(self, figure: str, threshold: str) -> None:
        self.figure, self.threshold_text = figure, threshold

    def _names(self, collection: str) -> list[str]:
        try:
            return sorted(self.base_trial.tensor_names(collection=collection))
        except Exception:  # smdebug raises a bare error type when the collection was never saved
            return []

    def _value(self, name: str, step: int, mode: ModeKeys = ModeKeys.GLOBAL) -> np.ndarray | None:
        try:
            return np.asarray(self.base_trial.tensor(name).value(step, mode=mode), dtype=np.float64)
        except (TensorUnavailableForStep, KeyError, ValueError):
            return None
        except Exception as error:  # e.g. TensorUnavailable for a step the tensor has no data for
            if type(error).__name__.startswith("TensorUnavailable"):
                return None
            raise

    def _gradient(self, name: str, step: int) -> np.ndarray | None:
        """A saved gradient with the fp16 loss scale divided out (GradScaler: the hook saw it scaled)."""
        value = self._value(name, step)
        if value is None:
            return None
        if self._scale_names is None:
            try:
                self._scale_names = sorted(self.base_trial.tensor_names(regex=f"^{GRAD_SCALE}"))
            except Exception:  # no such tensor: fp32/bf16 training
                self._scale_names = []
        for scale_name in self._scale_names:
            scale = self._value(scale_name, step)
            if scale is not None and scale.size and float(scale.ravel()[0]) > 0:
                return value / float(scale.ravel()[0])
        return value

    def _loss_name(self) -> str | None:
        names = self._names("losses")
        return names[0] if names else None

    def _loss_at(self, step: int) -> float | None:
        name = self._loss_name()
        value = self._value(name, step) if name else None
        return float(np.mean(value)) if value is not None and value.size else None

    def _fire(self, detail: str) -> bool:
        self.detail = detail
        return True


def loss_runs(trial: Any, loss_name: str) -> list[LossRun]:
    """Group global steps into consecutive runs of one mode: [(TRAIN, [(step, loss)...]), (EVAL, ...)]."""
    runs: list[LossRun] = []
    tensor = trial.tensor(loss_name)
    for step in tensor.steps():
        mode = trial.mode(step)
        value = float(np.mean(tensor.value(step)))
        if runs and runs[-1][0] == mode:
            runs[-1][1].append((step, value))
        else:
            runs.append((mode, [(step, value)]))
    return runs


def train_passes(runs: list[LossRun]) -> list[list[tuple[int, float]]]:
    """The training steps grouped by epoch: each TRAIN run between validation passes is one epoch.

    Without validation passes the whole run is one TRAIN run, split here into FALLBACK_WINDOW-step
    windows (the last, shorter one dropped unless it is the only one)."""
    train = [values for mode, values in runs if mode == ModeKeys.TRAIN]
    if any(mode == ModeKeys.EVAL for mode, _ in runs) or not train:
        return train
    steps = [item for values in train for item in values]
    windows = [steps[i : i + FALLBACK_WINDOW] for i in range(0, len(steps), FALLBACK_WINDOW)]
    return [w for w in windows if len(w) == FALLBACK_WINDOW] or windows


def pass_mean(values: list[tuple[int, float]]) -> float:
    """Mean loss of one pass; NaN when any step's loss is not finite (a diverged pass is no number)."""
    losses = [loss for _, loss in values]
    return float(np.mean(losses)) if all(math.isfinite(loss) for loss in losses) else math.nan


def step_range(steps: set[int]) -> str:
    return f"{min(steps)}-{max(steps)}" if steps else ""
