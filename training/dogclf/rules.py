"""In-script versions of five SageMaker Debugger built-in rules, as smdebug ``Rule`` subclasses.

SageMaker Debugger is closed to new customers and its built-in rules ship only in AWS's rule
container, so train_model.py evaluates these on the job's saved trial when training ends. Each rule
follows the behaviour and default parameters AWS documents ("List of Debugger built-in rules"):

- VanishingGradient(threshold=1e-7): the mean absolute value of a gradient tensor falls below
  ``threshold``.
- Overfit(start_step=0, patience=1, ratio_threshold=0.1): (mean validation loss - mean training
  loss) / mean training loss exceeds ``ratio_threshold`` for ``patience`` consecutive evaluations.
  Here an evaluation is one run of EVAL steps, compared with the TRAIN steps just before it.
- Overtraining(patience_train=5, patience_validation=10, delta=0.01): training loss has not improved
  on its best value by more than ``delta`` for ``patience_train`` training steps, or validation loss
  for ``patience_validation`` evaluation steps.
- PoorWeightInitialization(activation_inputs_regex=".*relu_input", threshold=10.0,
  distribution_range=0.001, patience=5, steps=10): over the first ``steps`` training steps, the
  ratio between the largest and smallest per-layer variance of activation (ReLU) inputs exceeds
  ``threshold``, or the spread between the 5th and 95th percentiles of all gradients is below
  ``distribution_range``, or the loss has not decreased within ``patience`` steps.
- LossNotDecreasing(num_steps=10, diff_percent=0.1, increase_threshold_percent=5, mode=None): every
  ``num_steps`` steps, the loss must have decreased by at least ``diff_percent`` percent compared with
  the loss ``num_steps`` steps earlier, and may never rise more than ``increase_threshold_percent``
  percent above the lowest loss so far. mode=None checks EVAL, then TRAIN, then GLOBAL steps, using
  the first that has losses (train_model.py passes mode="TRAIN": its EVAL steps are different
  batches of the validation split, so their losses are not a trajectory).

A rule that lacks the tensors it needs reports NoIssuesFound with a detail saying so (AWS's rule
container does the same: it waits for data and ends without a finding).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
from smdebug.core.modes import ModeKeys
from smdebug.exceptions import RuleEvaluationConditionMet, TensorUnavailableForStep
from smdebug.rules.rule import Rule
from smdebug.rules.rule_invoker import invoke_rule

ISSUES_FOUND = "IssuesFound"
NO_ISSUES_FOUND = "NoIssuesFound"
ERROR = "Error"


class _TrialRule(Rule):
    """Shared helpers: tensor lookup by collection, values by mode, a detail for the verdict."""

    def __init__(self, base_trial: Any) -> None:
        super().__init__(base_trial, action_str="")
        self.detail = ""
        self.checked = 0

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

    def _loss_names(self) -> list[str]:
        return self._names("losses")

    def _fire(self, step: int, detail: str) -> bool:
        self.detail = detail
        return True


class VanishingGradient(_TrialRule):
    def __init__(self, base_trial: Any, threshold: float = 1e-7) -> None:
        super().__init__(base_trial)
        self.threshold = float(threshold)

    def invoke_at_step(self, step: int) -> bool:
        for name in self._names("gradients"):
            value = self._value(name, step)
            if value is None or value.size == 0:
                continue
            self.checked += 1
            mean_abs = float(np.mean(np.abs(value)))
            if mean_abs < self.threshold:
                return self._fire(
                    step, f"mean |gradient| of {name} is {mean_abs:.3g} < threshold {self.threshold:g}"
                )
        return False


def _loss_runs(trial: Any, loss_name: str) -> list[tuple[ModeKeys, list[tuple[int, float]]]]:
    """Group global steps into consecutive runs of one mode: [(TRAIN, [(step, loss)...]), (EVAL, ...)]."""
    runs: list[tuple[ModeKeys, list[tuple[int, float]]]] = []
    tensor = trial.tensor(loss_name)
    for step in tensor.steps():
        mode = trial.mode(step)
        value = float(np.mean(tensor.value(step)))
        if runs and runs[-1][0] == mode:
            runs[-1][1].append((step, value))
        else:
            runs.append((mode, [(step, value)]))
    return runs


class Overfit(_TrialRule):
    def __init__(
        self, base_trial: Any, start_step: int = 0, patience: int = 1, ratio_threshold: float = 0.1
    ) -> None:
        super().__init__(base_trial)
        self.start_step, self.patience, self.ratio_threshold = (
            int(start_step),
            int(patience),
            float(ratio_threshold),
        )
        self._runs: list | None = None
        self._exceeded = 0

    def invoke_at_step(self, step: int) -> bool:
        if self._runs is None:
            names = self._loss_names()
            self._runs = _loss_runs(self.base_trial, names[0]) if names else []
        # Evaluate when the last step of an EVAL run that follows a TRAIN run is reached.
        for index, (mode, values) in enumerate(self._runs):
            if mode != ModeKeys.EVAL or values[-1][0] != step or index == 0:
                continue
            previous_mode, train_values = self._runs[index - 1]
            if previous_mode != ModeKeys.TRAIN or train_values[0][0] < self.start_step:
                continue
            train_mean = float(np.mean([v for _, v in train_values]))
            valid_mean = float(np.mean([v for _, v in values]))
            self.checked += 1
            ratio = (valid_mean - train_mean) / max(train_mean, 1e-12)
            if ratio > self.ratio_threshold:
                self._exceeded += 1
                if self._exceeded >= self.patience:
                    return self._fire(
                        step,
                        f"validation loss {valid_mean:.4f} vs training loss {train_mean:.4f}: "
                        f"ratio {ratio:.3f} > "
                        f"{self.ratio_threshold} for {self._exceeded} evaluation(s)",
                    )
            else:
                self._exceeded = 0
        return False


class Overtraining(_TrialRule):
    def __init__(
        self, base_trial: Any, patience_train: int = 5, patience_validation: int = 10, delta: float = 0.01
    ) -> None:
        super().__init__(base_trial)
        self.patience = {ModeKeys.TRAIN: int(patience_train), ModeKeys.EVAL: int(patience_validation)}
        self.delta = float(delta)
        self._best: dict[ModeKeys, float] = {}
        self._since_best: dict[ModeKeys, int] = {ModeKeys.TRAIN: 0, ModeKeys.EVAL: 0}

    def invoke_at_step(self, step: int) -> bool:
        names = self._loss_names()
        if not names:
            return False
        mode = self.base_trial.mode(step)
        if mode not in self.patience:
            return False
        value = self._value(names[0], step)
        if value is None:
            return False
        loss = float(np.mean(value))
        self.checked += 1
        best = self._best.get(mode)
        if best is None or loss < best - self.delta:
            self._best[mode] = loss if best is None else min(best, loss)
            self._since_best[mode] = 0
            return False
        self._since_best[mode] += 1
        if self._since_best[mode] >= self.patience[mode]:
            label = "training" if mode == ModeKeys.TRAIN else "validation"
            return self._fire(
                step,
                f"{label} loss has not improved on its best {self._best[mode]:.4f} by more than {self.delta} "
                f"for {self._since_best[mode]} steps (patience {self.patience[mode]})",
            )
        return False


class PoorWeightInitialization(_TrialRule):
    def __init__(
        self,
        base_trial: Any,
        activation_inputs_regex: str = ".*relu_input",
        threshold: float = 10.0,
        distribution_range: float = 0.001,
        patience: int = 5,
        steps: int = 10,
    ) -> None:
        super().__init__(base_trial)
        self.activation_regex = re.compile(activation_inputs_regex)
        self.threshold, self.distribution_range = float(threshold), float(distribution_range)
        self.patience, self.steps = int(patience), int(steps)
        self._train_steps_seen = 0
        self._first_loss: float | None = None
        self._best_loss: float | None = None

    def invoke_at_step(self, step: int) -> bool:
        if self.base_trial.mode(step) != ModeKeys.TRAIN or self._train_steps_seen >= self.steps:
            return False
        self._train_steps_seen += 1
        variances = {}
        for name in self.base_trial.tensor_names():
            if self.activation_regex.match(name):
                value = self._value(name, step)
                if value is not None and value.size > 1:
                    variances[name] = float(np.var(value))
        if len(variances) >= 2:
            self.checked += 1
            low, high = min(variances.values()), max(variances.values())
            ratio = high / max(low, 1e-30)
            if ratio > self.threshold:
                return self._fire(
                    step,
                    f"activation-input variance ranges from {low:.3g} to {high:.3g} across {len(variances)} "
                    f"layers: ratio {ratio:.3g} > {self.threshold}",
                )
        gradients = [self._value(name, step) for name in self._names("gradients")]
        gradients = [g.ravel() for g in gradients if g is not None and g.size]
        if gradients:
            self.checked += 1
            values = np.concatenate(gradients)
            spread = float(np.percentile(values, 95) - np.percentile(values, 5))
            if spread < self.distribution_range:
                return self._fire(
                    step,
                    f"gradients are nearly constant: 5th-95th percentile spread {spread:.3g} "
                    f"< {self.distribution_range}",
                )
        names = self._loss_names()
        value = self._value(names[0], step) if names else None
        if value is not None:
            loss = float(np.mean(value))
            if self._first_loss is None:
                self._first_loss, self._best_loss = loss, loss
            self._best_loss = min(self._best_loss or loss, loss)
            if self._train_steps_seen > self.patience and not self._best_loss < self._first_loss:
                return self._fire(
                    step,
                    f"loss has not decreased from its initial {self._first_loss:.4f} "
                    f"in {self._train_steps_seen} steps",
                )
        return False


class LossNotDecreasing(_TrialRule):
    _MODES: ClassVar[dict[str, ModeKeys]] = {
        "TRAIN": ModeKeys.TRAIN,
        "EVAL": ModeKeys.EVAL,
        "GLOBAL": ModeKeys.GLOBAL,
    }

    def __init__(
        self,
        base_trial: Any,
        num_steps: int = 10,
        diff_percent: float = 0.1,
        increase_threshold_percent: float = 5,
        mode: str | None = None,
    ) -> None:
        super().__init__(base_trial)
        self.num_steps, self.diff_percent = int(num_steps), float(diff_percent)
        self.increase_threshold_percent = float(increase_threshold_percent)
        self.mode_name = mode
        self._series: list[tuple[int, int, float]] | None = None  # (global step, mode step, loss)
        self._last_checked: tuple[int, float] | None = None
        self._min_loss: float | None = None

    def _load(self) -> list[tuple[int, int, float]]:
        names = self._loss_names()
        if not names:
            return []
        tensor = self.base_trial.tensor(names[0])
        modes = (
            [self._MODES[self.mode_name.upper()]]
            if self.mode_name
            else [ModeKeys.EVAL, ModeKeys.TRAIN, ModeKeys.GLOBAL]
        )
        for mode in modes:
            mode_steps = tensor.steps(mode=mode)
            if mode_steps:
                series = []
                for mode_step in mode_steps:
                    global_step = (
                        self.base_trial.global_step(mode, mode_step) if mode != ModeKeys.GLOBAL else mode_step
                    )
                    series.append(
                        (global_step, mode_step, float(np.mean(tensor.value(mode_step, mode=mode))))
                    )
                return series
        return []

    def invoke_at_step(self, step: int) -> bool:
        if self._series is None:
            self._series = self._load()
        for global_step, mode_step, loss in self._series:
            if global_step != step:
                continue
            self._min_loss = loss if self._min_loss is None else min(self._min_loss, loss)
            if self._last_checked is None:
                self._last_checked = (mode_step, loss)
                return False
            previous_step, previous_loss = self._last_checked
            if mode_step - previous_step < self.num_steps:
                return False
            self.checked += 1
            self._last_checked = (mode_step, loss)
            if loss > self._min_loss * (1 + self.increase_threshold_percent / 100) and loss > previous_loss:
                return self._fire(
                    step,
                    f"loss rose to {loss:.4f}, more than {self.increase_threshold_percent}% "
                    "above its minimum "
                    f"{self._min_loss:.4f}",
                )
            required = previous_loss * (1 - self.diff_percent / 100)
            if loss > required:
                return self._fire(
                    step,
                    f"loss {loss:.4f} at step {mode_step} did not decrease by {self.diff_percent}% "
                    f"from {previous_loss:.4f} "
                    f"at step {previous_step}",
                )
        return False


RULES = {
    "VanishingGradient": (VanishingGradient, {}),
    "Overfit": (Overfit, {}),
    "Overtraining": (Overtraining, {}),
    "PoorWeightInitialization": (PoorWeightInitialization, {}),
    "LossNotDecreasing": (LossNotDecreasing, {"mode": "TRAIN"}),
}


@dataclass
class Verdict:
    RuleConfigurationName: str
    RuleEvaluationStatus: str
    StatusDetails: str
    Step: int | None


def evaluate_rule(rule: _TrialRule, name: str) -> Verdict:
    steps = rule.base_trial.steps()
    if not steps:
        return Verdict(name, NO_ISSUES_FOUND, "no steps were saved: nothing to evaluate", None)
    try:
        invoke_rule(rule, start_step=0, end_step=max(steps) + 1, raise_eval_cond=True)
    except RuleEvaluationConditionMet as condition:
        return Verdict(name, ISSUES_FOUND, rule.detail, int(condition.step))
    detail = "no issues found" if rule.checked else "not enough saved tensors to evaluate the rule"
    return Verdict(name, NO_ISSUES_FOUND, f"{detail} ({rule.checked} checks over {len(steps)} steps)", None)


def evaluate_all(trial: Any, overrides: dict[str, dict[str, Any]] | None = None) -> list[Verdict]:
    """Run every rule on a trial; a rule that crashes gets an Error verdict, never kills the job."""
    verdicts = []
    for name, (rule_class, defaults) in RULES.items():
        try:
            rule = rule_class(trial, **{**defaults, **(overrides or {}).get(name, {})})
            verdicts.append(evaluate_rule(rule, name))
        except Exception as error:
            verdicts.append(Verdict(name, ERROR, f"{type(error).__name__}: {error}", None))
    return verdicts


def verdicts_json(verdicts: list[Verdict]) -> str:
    return json.dumps({"rules": [asdict(verdict) for verdict in verdicts]}, indent=2)
