"""VanishingGradient and PoorWeightInitialization: rules on the saved gradients and activation inputs
of the first training steps (semantics and parameters: the docstring of dogclf.debugger.rules)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from smdebug.core.modes import ModeKeys

from dogclf.debugger.hook_config import HEAD_ACTIVATIONS_REGEX
from dogclf.debugger.rule_base import CONVERGED_LOSS, TrialRule

# Activations of the layers that train (names relative to the full model): ReLU inputs in the head,
# and the head Linear's input and output (what hook_config saves as HEAD_ACTIVATIONS).
TRAINED_ACTIVATION_INPUTS = rf"^head\..*relu_input|{HEAD_ACTIVATIONS_REGEX}"
ALL_ACTIVATION_INPUTS = ".*relu_input"


class VanishingGradient(TrialRule):
    def __init__(
        self, base_trial: Any, threshold: float = 1e-7, converged_loss: float = CONVERGED_LOSS
    ) -> None:
        super().__init__(base_trial)
        self.threshold = float(threshold)
        self.converged_loss = float(converged_loss)
        self.converged_steps = 0
        self._smallest: float | None = None

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
            self.checks += 1  # judged: a converged step (its tiny gradients are expected)
            return False
        for name, value in values:
            self.checks += 1
            mean_abs = float(np.mean(np.abs(value)))
            if self._smallest is None or mean_abs < self._smallest:
                self._smallest = mean_abs
                self.judged(
                    f"smallest mean |gradient| {mean_abs:.3g} ({name})", f"fires below {self.threshold:g}"
                )
            if mean_abs < self.threshold:
                return self._fire(
                    f"mean |gradient| of {name} is {mean_abs:.3g} < threshold {self.threshold:g} "
                    f"(training loss {loss if loss is None else round(loss, 4)})"
                )
        return False


def _variance_ratio(variances: dict[str, float]) -> tuple[float, float, float]:
    low, high = min(variances.values()), max(variances.values())
    return low, high, high / max(low, 1e-30)


class PoorWeightInitialization(TrialRule):
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
        self._losses: list[float] = []
        self._smallest_spread: float | None = None
        self._largest_ratio = 0.0
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
            if ratio > self._largest_ratio:
                self._largest_ratio = ratio
                self.judged(
                    f"activation variance ratio up to {ratio:.3g} across {len(variances)} layers "
                    f"({low:.3g} to {high:.3g})",
                    f"fires above {self.threshold:g}",
                )
            if ratio > self.threshold:
                self.steps_read.add(step)
                return self._fire(
                    f"activation-input variance ranges from {low:.3g} to {high:.3g} across {len(variances)} "
                    f"layers: ratio {ratio:.3g} > {self.threshold}"
                )
        loss = self._loss_at(step)
        if loss is not None and loss < self.converged_loss:
            self.steps_read.add(step)  # converged: tiny gradients are expected, not a poor init
            self.checks += 1
            return False
        if self._gradient_spread_fires(step):
            return True
        read = read or self._smallest_spread is not None
        if loss is not None:
            self._losses.append(loss)
            if self._train_steps_seen == self.steps and self._loss_fires():
                self.steps_read.add(step)
                return True
        if read:  # activations or gradients: the loss alone is not what this rule is about
            self.steps_read.add(step)
        return False

    def _gradient_spread_fires(self, step: int) -> bool:
        saved = (self._gradient(name, step) for name in self._names("gradients"))
        gradients = [g.ravel() for g in saved if g is not None and g.size]
        if not gradients:
            return False
        self.checks += 1
        values = np.concatenate(gradients)
        spread = float(np.percentile(values, 95) - np.percentile(values, 5))
        if self._smallest_spread is None or spread < self._smallest_spread:
            self._smallest_spread = spread
        if spread < self.distribution_range:
            self.steps_read.add(step)
            self.judged(
                f"gradient 5th-95th percentile spread {spread:.3g}",
                f"fires below {self.distribution_range:g}",
            )
            return self._fire(
                f"gradients are nearly constant: 5th-95th percentile spread {spread:.3g} "
                f"< {self.distribution_range}"
            )
        return False

    def _loss_fires(self) -> bool:
        """Did the loss decrease within the window? The median of its last ``patience`` losses against
        the median of its first ``patience``: one spiky mini-batch (an Adam overshoot in the first
        steps, a hard batch) does not decide, as a single value would."""
        if len(self._losses) < 2 * self.patience:
            return False
        first = np.asarray(self._losses[: self.patience])
        last = np.asarray(self._losses[-self.patience :])
        self.checks += 1
        if not (np.all(np.isfinite(first)) and np.all(np.isfinite(last))):
            self.judged("training loss not finite", "must be finite")
            return self._fire(f"training loss is not finite within the first {len(self._losses)} steps")
        start, end = float(np.median(first)), float(np.median(last))
        if not self.figure.startswith("activation"):  # the activation ratio, when judged, says more
            self.judged(
                f"median loss of the first {self.patience} steps {start:.4g} -> of steps "
                f"{len(self._losses) - self.patience}-{len(self._losses) - 1} {end:.4g}",
                f"must fall within {len(self._losses)} steps",
            )
        if end < start:
            return False
        return self._fire(
            f"loss has not decreased in the first {len(self._losses)} steps: median of the first "
            f"{self.patience} {start:.4f}, of the last {self.patience} {end:.4f}"
        )

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
        smallest = self._smallest_spread
        spread = f"smallest gradient spread {smallest:.3g}" if smallest is not None else ""
        return "; ".join(part for part in (activation, spread, self.unjudged) if part)
