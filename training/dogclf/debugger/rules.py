"""In-script versions of five SageMaker Debugger built-in rules, as smdebug ``Rule`` subclasses.

SageMaker Debugger is closed to new customers and its built-in rules ship only in AWS's rule
container, so train_model.py evaluates these on the job's saved trial when training ends. Each rule
follows the behaviour and default parameters AWS documents ("List of Debugger built-in rules"), on
the tensors of the parameters that train (the head: the frozen backbone has no gradients):

- VanishingGradient(threshold=1e-7): the mean absolute value of a gradient tensor at a TRAIN step
  falls below ``threshold``. One guard AWS's rule lacks: a step whose training loss is already below
  ``converged_loss`` is not a vanishing gradient (the gradient of a loss near 0 is rightly near 0),
  so a run trained to convergence does not fire.
- Overfit(start_step=0, patience=1, ratio_threshold=0.1): (mean validation loss - mean training
  loss) / mean training loss exceeds ``ratio_threshold`` for ``patience`` consecutive evaluations.
  An evaluation is one validation pass (EVAL steps), compared with the TRAIN steps just before it.
- Overtraining(patience_train=5, patience_validation=10, delta=0.01): training loss has not improved
  on its best value by more than ``delta`` for ``patience_train`` training steps, or validation loss
  for ``patience_validation`` evaluations. Validation is judged per pass (its mean loss): single EVAL
  steps are different batches of the validation split, not a trajectory.
- PoorWeightInitialization(activation_inputs_regex=".*relu_input", threshold=10.0,
  distribution_range=0.001, patience=5, steps=10): over the first ``steps`` training steps, the
  ratio between the largest and smallest per-layer variance of activation (ReLU) inputs exceeds
  ``threshold``, or the spread between the 5th and 95th percentiles of all gradients is below
  ``distribution_range``, or the loss has not decreased within ``patience`` steps. train_model.py
  passes steps=MIN_RULE_STEPS so that the verdict rests on enough steps, and an
  ``activation_inputs_regex`` that selects the ReLU inputs of the trained part of the model
  (``TRAINED_ACTIVATION_INPUTS``): the frozen backbone's activation scales are fixed by its weights
  (pretrained or random), not by an initialization that training starts from. Its ReLU inputs are
  still saved and their variance ratio is reported in the verdict's details, unjudged. With today's
  linear head no trained layer has a ReLU, so the gradient and loss checks decide.
- LossNotDecreasing(num_steps=10, diff_percent=0.1, increase_threshold_percent=5, mode=None): every
  ``num_steps`` steps, the loss must have decreased by at least ``diff_percent`` percent compared with
  the loss ``num_steps`` steps earlier, and may never rise more than ``increase_threshold_percent``
  percent above the lowest loss so far. mode=None checks EVAL, then TRAIN, then GLOBAL steps, using
  the first that has losses (train_model.py passes mode="TRAIN": EVAL steps are different batches).
  One difference from AWS's rule: "the loss at step s" is the mean of the saved losses of the
  ``num_steps`` steps up to s, not the single batch's loss saved at s. On small batches one batch's
  loss varies by more than the trend (up to 5x on the demo's batches of 8), so single values fire on
  noise; window means compare the trend. Checks stop once the loss is below ``converged_loss``.

Convergence: VanishingGradient, PoorWeightInitialization's gradient check and LossNotDecreasing do not
judge steps whose training loss is below ``converged_loss`` (1e-3): there, near-zero gradients and a
flat loss are what a converged run looks like, not a fault.

Verdicts. Each rule counts the saved steps it read. A rule that fired is IssuesFound. A rule that did
not fire but read fewer than ``contract.MIN_RULE_STEPS`` steps has not passed: it is Error with
StatusDetails starting ``contract.NOT_ENOUGH_DATA`` (AWS's rule container would keep waiting for data;
a finished job has no more to give). The gate treats both as not passed.
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

from dogclf.contract import (
    ERROR,
    ISSUES_FOUND,
    LOSS_NOT_DECREASING,
    MIN_RULE_STEPS,
    NO_ISSUES_FOUND,
    NOT_ENOUGH_DATA,
    OVERFIT,
    OVERTRAINING,
    POOR_WEIGHT_INITIALIZATION,
    RULE_NAMES,
    VANISHING_GRADIENT,
)
from dogclf.debugger.hook_config import GRAD_SCALE

__all__ = ["ERROR", "ISSUES_FOUND", "NO_ISSUES_FOUND", "RULES", "Verdict", "evaluate_all", "evaluate_rule"]


# Below this training loss a run has converged (see the module docstring).
CONVERGED_LOSS = 1e-3


class _TrialRule(Rule):
    """Shared helpers: tensor lookup by collection, values by mode, the steps read, a detail."""

    def __init__(self, base_trial: Any) -> None:
        super().__init__(base_trial, action_str="")
        self.detail = ""
        self.checks = 0  # comparisons made against the rule's condition
        self.steps_read: set[int] = set()  # global steps whose saved tensors the rule read
        self._scale_names: list[str] | None = None

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


class VanishingGradient(_TrialRule):
    def __init__(
        self, base_trial: Any, threshold: float = 1e-7, converged_loss: float = CONVERGED_LOSS
    ) -> None:
        super().__init__(base_trial)
        self.threshold = float(threshold)
        self.converged_loss = float(converged_loss)
        self.converged_steps = 0

    def invoke_at_step(self, step: int) -> bool:
        if self.base_trial.mode(step) != ModeKeys.TRAIN:
            return False
        values: list[tuple[str, np.ndarray]] = []
        for name in self._names("gradients"):
            value = self._gradient(name, step)
            if value is not None and value.size:
                values.append((name, value))
        if not values:
            return False
        self.steps_read.add(step)
        loss = self._loss_at(step)
        if loss is not None and loss < self.converged_loss:
            self.converged_steps += 1
            return False
        for name, value in values:
            self.checks += 1
            mean_abs = float(np.mean(np.abs(value)))
            if mean_abs < self.threshold:
                return self._fire(
                    f"mean |gradient| of {name} is {mean_abs:.3g} < threshold {self.threshold:g} "
                    f"(training loss {loss if loss is None else round(loss, 4)})"
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


class _LossRunsRule(_TrialRule):
    """A rule that judges whole TRAIN/EVAL runs of losses (loaded once, on the first step)."""

    def __init__(self, base_trial: Any) -> None:
        super().__init__(base_trial)
        self._runs: list[tuple[ModeKeys, list[tuple[int, float]]]] | None = None

    def runs(self) -> list[tuple[ModeKeys, list[tuple[int, float]]]]:
        if self._runs is None:
            name = self._loss_name()
            self._runs = _loss_runs(self.base_trial, name) if name else []
        return self._runs


class Overfit(_LossRunsRule):
    def __init__(
        self, base_trial: Any, start_step: int = 0, patience: int = 1, ratio_threshold: float = 0.1
    ) -> None:
        super().__init__(base_trial)
        self.start_step, self.patience = int(start_step), int(patience)
        self.ratio_threshold = float(ratio_threshold)
        self._exceeded = 0

    def invoke_at_step(self, step: int) -> bool:
        runs = self.runs()
        # Judge when the last step of a validation pass that follows a training run is reached.
        for index, (mode, values) in enumerate(runs):
            if mode != ModeKeys.EVAL or values[-1][0] != step or index == 0:
                continue
            previous_mode, train_values = runs[index - 1]
            if previous_mode != ModeKeys.TRAIN or train_values[0][0] < self.start_step:
                continue
            self.steps_read.update(s for s, _ in (*train_values, *values))
            train_mean = float(np.mean([v for _, v in train_values]))
            valid_mean = float(np.mean([v for _, v in values]))
            self.checks += 1
            ratio = (valid_mean - train_mean) / max(train_mean, 1e-12)
            if ratio <= self.ratio_threshold:
                self._exceeded = 0
                continue
            self._exceeded += 1
            if self._exceeded >= self.patience:
                return self._fire(
                    f"validation loss {valid_mean:.4f} vs training loss {train_mean:.4f}: "
                    f"ratio {ratio:.3f} > "
                    f"{self.ratio_threshold} for {self._exceeded} evaluation(s)"
                )
        return False


class Overtraining(_LossRunsRule):
    def __init__(
        self, base_trial: Any, patience_train: int = 5, patience_validation: int = 10, delta: float = 0.01
    ) -> None:
        super().__init__(base_trial)
        self.patience = {ModeKeys.TRAIN: int(patience_train), ModeKeys.EVAL: int(patience_validation)}
        self.delta = float(delta)
        self._best: dict[ModeKeys, float] = {}
        self._since_best = {ModeKeys.TRAIN: 0, ModeKeys.EVAL: 0}

    def _observe(self, mode: ModeKeys, loss: float, unit: str) -> bool:
        self.checks += 1
        best = self._best.get(mode)
        if best is None or loss < best - self.delta:
            self._best[mode] = loss if best is None else min(best, loss)
            self._since_best[mode] = 0
            return False
        self._since_best[mode] += 1
        if self._since_best[mode] < self.patience[mode]:
            return False
        label = "training" if mode == ModeKeys.TRAIN else "validation"
        return self._fire(
            f"{label} loss has not improved on its best {self._best[mode]:.4f} by more than {self.delta} "
            f"for {self._since_best[mode]} {unit} (patience {self.patience[mode]})"
        )

    def invoke_at_step(self, step: int) -> bool:
        for mode, values in self.runs():
            if mode == ModeKeys.TRAIN:
                for value_step, loss in values:
                    if value_step == step:
                        self.steps_read.add(step)
                        return self._observe(mode, loss, "steps")
            elif mode == ModeKeys.EVAL and values[-1][0] == step:
                self.steps_read.update(s for s, _ in values)
                return self._observe(mode, float(np.mean([v for _, v in values])), "evaluations")
        return False


# ReLU inputs of the layers that train: the head (names are relative to the full model).
TRAINED_ACTIVATION_INPUTS = r"^head\..*relu_input"
ALL_ACTIVATION_INPUTS = ".*relu_input"


def _variance_ratio(variances: dict[str, float]) -> tuple[float, float, float]:
    low, high = min(variances.values()), max(variances.values())
    return low, high, high / max(low, 1e-30)


class PoorWeightInitialization(_TrialRule):
    def __init__(
        self,
        base_trial: Any,
        activation_inputs_regex: str = ".*relu_input",
        threshold: float = 10.0,
        distribution_range: float = 0.001,
        patience: int = 5,
        steps: int = 10,
        converged_loss: float = CONVERGED_LOSS,
    ) -> None:
        super().__init__(base_trial)
        self.converged_loss = float(converged_loss)
        self.activation_regex = re.compile(activation_inputs_regex)
        self.threshold, self.distribution_range = float(threshold), float(distribution_range)
        self.patience, self.steps = int(patience), int(steps)
        self._train_steps_seen = 0
        self._first_loss: float | None = None
        self._best_loss: float | None = None
        self.activation_layers = 0  # layers the activation check compared (at its last step)
        self.unjudged = ""  # the activation inputs outside the regex, reported but not judged

    def _variance(self, name: str, step: int) -> float | None:
        """Per-layer activation variance: the saved ``variance`` reduction, else from the full value."""
        tensor = self.base_trial.tensor(name)
        try:
            value = tensor.reduction_value(step, "variance")
        except Exception as error:
            if type(error).__name__.startswith("TensorUnavailable"):
                return None
            raise
        return None if value is None else float(np.asarray(value, dtype=np.float64))

    def invoke_at_step(self, step: int) -> bool:
        if self.base_trial.mode(step) != ModeKeys.TRAIN or self._train_steps_seen >= self.steps:
            return False
        self._train_steps_seen += 1
        read = False
        all_names = self.base_trial.tensor_names()
        names = [name for name in all_names if self.activation_regex.match(name)]
        variances = {name: v for name in names if (v := self._variance(name, step)) is not None}
        if self._train_steps_seen == 1:
            self._note_unjudged(all_names, set(names), step)
        self.activation_layers = len(variances)
        if len(variances) >= 2:
            read = True
            self.checks += 1
            low, high, ratio = _variance_ratio(variances)
            if ratio > self.threshold:
                self.steps_read.add(step)
                return self._fire(
                    f"activation-input variance ranges from {low:.3g} to {high:.3g} across {len(variances)} "
                    f"layers: ratio {ratio:.3g} > {self.threshold}"
                )
        loss = self._loss_at(step)
        gradients: list[np.ndarray] = []
        if loss is not None and loss < self.converged_loss:
            self.steps_read.add(step)  # converged: tiny gradients are expected, not a poor init
            return False
        for name in self._names("gradients"):
            gradient = self._gradient(name, step)
            if gradient is not None and gradient.size:
                gradients.append(gradient.ravel())
        if gradients:
            read = True
            self.checks += 1
            values = np.concatenate(gradients)
            spread = float(np.percentile(values, 95) - np.percentile(values, 5))
            if spread < self.distribution_range:
                self.steps_read.add(step)
                return self._fire(
                    f"gradients are nearly constant: 5th-95th percentile spread {spread:.3g} "
                    f"< {self.distribution_range}"
                )
        if loss is not None:
            if self._first_loss is None or self._best_loss is None:
                self._first_loss = self._best_loss = loss
            self._best_loss = min(self._best_loss, loss)
            if self._train_steps_seen > self.patience and not self._best_loss < self._first_loss:
                self.steps_read.add(step)
                return self._fire(
                    f"loss has not decreased from its initial {self._first_loss:.4f} "
                    f"in {self._train_steps_seen} steps"
                )
        if read:  # activations or gradients: the loss alone is not what this rule is about
            self.steps_read.add(step)
        return False

    def _note_unjudged(self, all_names: list[str], judged: set[str], step: int) -> None:
        others = [n for n in all_names if n not in judged and re.match(ALL_ACTIVATION_INPUTS, n)]
        variances = {name: v for name in others if (v := self._variance(name, step)) is not None}
        if len(variances) >= 2:
            low, high, ratio = _variance_ratio(variances)
            self.unjudged = (
                f"{len(variances)} frozen ReLU inputs not judged (variance {low:.3g} to {high:.3g}, "
                f"ratio {ratio:.3g})"
            )

    def summary(self) -> str:
        activation = (
            f"activation check over {self.activation_layers} layers"
            if self.activation_layers >= 2
            else f"no trained layer's activation input matches {self.activation_regex.pattern!r}"
        )
        return "; ".join(part for part in (activation, self.unjudged) if part)


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
        converged_loss: float = CONVERGED_LOSS,
    ) -> None:
        super().__init__(base_trial)
        self.converged_loss = float(converged_loss)
        self.num_steps, self.diff_percent = int(num_steps), float(diff_percent)
        self.increase_threshold_percent = float(increase_threshold_percent)
        self.mode_name = mode
        self._series: dict[int, tuple[int, float]] | None = None  # global step -> (mode step, window mean)
        self._last_checked: tuple[int, float] | None = None
        self._min_loss: float | None = None

    def _load(self) -> dict[int, tuple[int, float]]:
        name = self._loss_name()
        if name is None:
            return {}
        tensor = self.base_trial.tensor(name)
        if self.mode_name:
            modes = [self._MODES[self.mode_name.upper()]]
        else:
            modes = [ModeKeys.EVAL, ModeKeys.TRAIN, ModeKeys.GLOBAL]
        for mode in modes:
            mode_steps = tensor.steps(mode=mode)
            if not mode_steps:
                continue
            series = {}
            window: list[float] = []
            for mode_step in mode_steps:
                global_step = (
                    self.base_trial.global_step(mode, mode_step) if mode != ModeKeys.GLOBAL else mode_step
                )
                window = [*window, float(np.mean(tensor.value(mode_step, mode=mode)))][-self.num_steps :]
                series[global_step] = (mode_step, float(np.mean(window)))
            return series
        return {}

    def invoke_at_step(self, step: int) -> bool:
        if self._series is None:
            self._series = self._load()
        if step not in self._series:
            return False
        self.steps_read.add(step)
        mode_step, loss = self._series[step]
        if mode_step + 1 < self.num_steps:  # the first full window ends at mode step num_steps - 1
            return False
        self._min_loss = loss if self._min_loss is None else min(self._min_loss, loss)
        if self._last_checked is None:
            self._last_checked = (mode_step, loss)
            return False
        previous_step, previous_loss = self._last_checked
        if mode_step - previous_step < self.num_steps:
            return False
        self._last_checked = (mode_step, loss)
        if max(loss, previous_loss) < self.converged_loss:
            return False
        self.checks += 1
        if loss > self._min_loss * (1 + self.increase_threshold_percent / 100) and loss > previous_loss:
            return self._fire(
                f"mean loss of the last {self.num_steps} steps rose to {loss:.4f}, more than "
                f"{self.increase_threshold_percent}% above its minimum {self._min_loss:.4f}"
            )
        if loss > previous_loss * (1 - self.diff_percent / 100):
            return self._fire(
                f"mean loss of the last {self.num_steps} steps {loss:.4f} at step {mode_step} did not "
                f"decrease by {self.diff_percent}% from {previous_loss:.4f} at step {previous_step}"
            )
        return False


# RuleConfigurationName -> (rule class, parameters train_model.py passes over the documented defaults).
RULES: dict[str, tuple[type[_TrialRule], dict[str, Any]]] = {
    VANISHING_GRADIENT: (VanishingGradient, {}),
    OVERFIT: (Overfit, {}),
    OVERTRAINING: (Overtraining, {}),
    POOR_WEIGHT_INITIALIZATION: (
        PoorWeightInitialization,
        {"steps": MIN_RULE_STEPS, "activation_inputs_regex": TRAINED_ACTIVATION_INPUTS},
    ),
    LOSS_NOT_DECREASING: (LossNotDecreasing, {"mode": "TRAIN"}),
}
assert tuple(RULES) == RULE_NAMES


@dataclass
class Verdict:
    RuleConfigurationName: str
    RuleEvaluationStatus: str
    StatusDetails: str
    Step: int | None
    StepsEvaluated: int = 0  # contract.STEPS_EVALUATED_KEY

    def log_line(self) -> str:
        step = f" at step {self.Step}" if self.Step is not None else ""
        return (
            f"rule {self.RuleConfigurationName}: {self.RuleEvaluationStatus}{step} - {self.StatusDetails} "
            f"({self.StepsEvaluated} steps)"
        )


def evaluate_rule(rule: _TrialRule, name: str, min_steps: int = MIN_RULE_STEPS) -> Verdict:
    steps = rule.base_trial.steps()
    if not steps:
        return Verdict(name, ERROR, f"{NOT_ENOUGH_DATA}no steps were saved", None, 0)
    try:
        invoke_rule(rule, start_step=0, end_step=max(steps) + 1, raise_eval_cond=True)
    except RuleEvaluationConditionMet as condition:
        return Verdict(name, ISSUES_FOUND, rule.detail, int(condition.step), len(rule.steps_read))
    read = len(rule.steps_read)
    if read < min_steps:
        return Verdict(
            name,
            ERROR,
            f"{NOT_ENOUGH_DATA}the rule read {read} saved steps, fewer than the {min_steps} it needs "
            f"to decide ({rule.checks} checks; the trial has {len(steps)} steps)",
            None,
            read,
        )
    detail = f"no issues found ({rule.checks} checks over {read} steps)"
    if isinstance(rule, VanishingGradient) and rule.converged_steps:
        detail += f"; {rule.converged_steps} steps had converged (loss < {rule.converged_loss:g})"
    if isinstance(rule, PoorWeightInitialization):
        detail += f"; {rule.summary()}"
    return Verdict(name, NO_ISSUES_FOUND, detail, None, read)


def evaluate_all(
    trial: Any, overrides: dict[str, dict[str, Any]] | None = None, *, min_steps: int = MIN_RULE_STEPS
) -> list[Verdict]:
    """Run every rule on a trial; a rule that crashes gets an Error verdict, never kills the job."""
    verdicts = []
    for name, (rule_class, defaults) in RULES.items():
        try:
            rule = rule_class(trial, **{**defaults, **(overrides or {}).get(name, {})})
            verdicts.append(evaluate_rule(rule, name, min_steps))
        except Exception as error:
            verdicts.append(Verdict(name, ERROR, f"{type(error).__name__}: {error}", None))
    return verdicts


def error_verdicts(detail: str) -> list[Verdict]:
    """Every rule as Error (no hook, no trial): the job still finishes, the gate does not pass it."""
    return [Verdict(name, ERROR, detail, None) for name in RULES]


def verdicts_json(verdicts: list[Verdict]) -> str:
    return json.dumps({"rules": [asdict(verdict) for verdict in verdicts]}, indent=2)
