"""Overfit, Overtraining and LossNotDecreasing: rules on the saved losses, judged per pass (one epoch
of training steps, one validation pass) so that mini-batch noise is averaged out before any
comparison (semantics and parameters: the docstring of dogclf.debugger.rules)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from smdebug.core.modes import ModeKeys

from dogclf.debugger.rule_base import (
    CONVERGED_FRACTION_OF_START,
    CONVERGED_LOSS,
    FALLBACK_WINDOW,
    LossRun,
    TrialRule,
    loss_runs,
    pass_mean,
    train_passes,
)


class _LossRunsRule(TrialRule):
    """A rule that judges whole TRAIN/EVAL runs of losses (loaded once, on the first step)."""

    def __init__(self, base_trial: Any) -> None:
        super().__init__(base_trial)
        self._runs: list[LossRun] | None = None

    def runs(self) -> list[LossRun]:
        if self._runs is None:
            name = self._loss_name()
            self._runs = loss_runs(self.base_trial, name) if name else []
        return self._runs


class Overfit(_LossRunsRule):
    def __init__(
        self, base_trial: Any, start_step: int = 0, patience: int = 1, ratio_threshold: float = 0.1
    ) -> None:
        super().__init__(base_trial)
        self.start_step, self.patience = int(start_step), int(patience)
        self.ratio_threshold = float(ratio_threshold)
        self._exceeded = 0
        self._largest: float | None = None

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
            train_mean, valid_mean = pass_mean(train_values), pass_mean(values)
            self.checks += 1
            ratio = (valid_mean - train_mean) / max(train_mean, 1e-12)
            if self._largest is None or ratio > self._largest:
                self._largest = ratio
                self.judged(
                    f"largest (valid - train) / train loss ratio {ratio:.3f} "
                    f"(valid {valid_mean:.4f}, train {train_mean:.4f})",
                    f"fires above {self.ratio_threshold:g} for {self.patience} evaluation(s)",
                )
            if not ratio > self.ratio_threshold:
                self._exceeded = 0
                continue
            self._exceeded += 1
            if self._exceeded >= self.patience:
                return self._fire(
                    f"validation loss {valid_mean:.4f} vs training loss {train_mean:.4f}: "
                    f"ratio {ratio:.3f} > {self.ratio_threshold} for {self._exceeded} evaluation(s)"
                )
        return False


class Overtraining(_LossRunsRule):
    """Patience counts passes: an epoch's mean training loss, a validation pass's mean loss."""

    def __init__(
        self, base_trial: Any, patience_train: int = 5, patience_validation: int = 10, delta: float = 0.01
    ) -> None:
        super().__init__(base_trial)
        self.patience = {ModeKeys.TRAIN: int(patience_train), ModeKeys.EVAL: int(patience_validation)}
        self.delta = float(delta)
        self._best: dict[ModeKeys, float] = {}
        self._since_best = {ModeKeys.TRAIN: 0, ModeKeys.EVAL: 0}
        self._ends: dict[int, tuple[ModeKeys, list[tuple[int, float]]]] | None = None

    def _observe(self, mode: ModeKeys, loss: float) -> bool:
        self.checks += 1
        best = self._best.get(mode)
        if best is None or loss < best - self.delta:
            self._best[mode] = loss if best is None else min(best, loss)
            self._since_best[mode] = 0
        else:
            self._since_best[mode] += 1
        label = "training" if mode == ModeKeys.TRAIN else "validation"
        unit = "epochs" if mode == ModeKeys.TRAIN else "validation passes"
        self.judged(
            f"{label} loss {self._since_best[mode]} {unit} without improving on its best "
            f"{self._best[mode]:.4f} by more than {self.delta}",
            f"fires at {self.patience[mode]} {unit}",
        )
        if self._since_best[mode] < self.patience[mode]:
            return False
        return self._fire(
            f"{label} loss has not improved on its best {self._best[mode]:.4f} by more than {self.delta} "
            f"for {self._since_best[mode]} {unit} (patience {self.patience[mode]})"
        )

    def invoke_at_step(self, step: int) -> bool:
        if self._ends is None:
            runs = self.runs()
            passes = [(ModeKeys.TRAIN, values) for values in train_passes(runs)]
            passes += [(mode, values) for mode, values in runs if mode == ModeKeys.EVAL]
            self._ends = {values[-1][0]: (mode, values) for mode, values in passes}
        if step not in self._ends:
            return False
        mode, values = self._ends[step]
        self.steps_read.update(s for s, _ in values)
        return self._observe(mode, pass_mean(values))


class LossNotDecreasing(TrialRule):
    """Judges the mean loss of consecutive windows: one epoch each when ``num_steps`` is None."""

    _MODES: ClassVar[dict[str, ModeKeys]] = {
        "TRAIN": ModeKeys.TRAIN,
        "EVAL": ModeKeys.EVAL,
        "GLOBAL": ModeKeys.GLOBAL,
    }
    _AWS_ORDER: ClassVar[tuple[ModeKeys, ...]] = (ModeKeys.EVAL, ModeKeys.TRAIN, ModeKeys.GLOBAL)

    def __init__(
        self,
        base_trial: Any,
        num_steps: int | None = 10,
        diff_percent: float = 0.1,
        increase_threshold_percent: float = 5,
        mode: str | None = None,
        converged_loss: float = CONVERGED_LOSS,
    ) -> None:
        super().__init__(base_trial)
        self.converged_loss = float(converged_loss)
        self.num_steps = None if num_steps is None else int(num_steps)
        self.diff_percent = float(diff_percent)
        self.increase_threshold_percent = float(increase_threshold_percent)
        self.mode_name = mode
        # last step of each window -> (index, label, window)
        self._windows: dict[int, tuple[int, str, list[tuple[int, float]]]] | None = None
        self._means: list[tuple[str, float]] = []
        self.unit = "window"

    def _load_windows(self) -> list[tuple[str, list[tuple[int, float]]]]:
        """(label, window) in order; with num_steps=None the first is the start of training."""
        name = self._loss_name()
        if name is None:
            return []
        runs = loss_runs(self.base_trial, name)
        # AWS's order when no mode is given: EVAL, then TRAIN, then GLOBAL.
        modes = [self._MODES[self.mode_name.upper()]] if self.mode_name else list(self._AWS_ORDER)
        for mode in modes:
            runs_of_mode = [values for run_mode, values in runs if run_mode == mode]
            if not runs_of_mode:
                continue
            if self.num_steps is None and mode in (ModeKeys.TRAIN, ModeKeys.EVAL):
                if mode == ModeKeys.EVAL:
                    self.unit = "validation pass"
                    return [(f"validation pass {i + 1}", w) for i, w in enumerate(runs_of_mode)]
                self.unit = "epoch"
                passes = train_passes(runs)
                # AWS's first comparison is with the loss at step 0, before any update: a loss that
                # explodes within epoch 1 is seen. An untrained head's batch losses differ little.
                start = [("step 0", passes[0][:1])] if len(passes[0]) > 1 else []
                return start + [(f"epoch {i + 1}", w) for i, w in enumerate(passes)]
            size = self.num_steps or FALLBACK_WINDOW
            self.unit = f"{size}-step window"
            steps = [item for values in runs_of_mode for item in values]
            windows = [steps[i : i + size] for i in range(0, len(steps) - size + 1, size)]
            return [(f"steps {w[0][0]}-{w[-1][0]}", w) for w in windows]
        return []

    def invoke_at_step(self, step: int) -> bool:
        if self._windows is None:
            self._windows = {
                w[-1][0]: (i, label, w) for i, (label, w) in enumerate(self._load_windows()) if w
            }
        if step not in self._windows:
            return False
        index, label, window = self._windows[step]
        self.steps_read.update(s for s, _ in window)
        loss = pass_mean(window)
        self._means.append((label, loss))
        if not math.isfinite(loss):
            self.checks += 1
            self.judged(f"mean loss of {label} not finite", "must be finite")
            return self._fire(f"the loss is not finite in {label} (steps up to {step})")
        if index == 0:
            return False
        previous_label, previous = self._means[-2]
        lowest_label, lowest = min(self._means[:-1], key=lambda item: item[1])
        self.checks += 1
        # Converged: a flat loss near 0, or far below where it started, is the goal, not a fault. A
        # loss that climbs back out of that band is judged again.
        start = self._means[0][1]
        if max(loss, previous) < max(self.converged_loss, CONVERGED_FRACTION_OF_START * start):
            return False
        limit = lowest * (1 + self.increase_threshold_percent / 100)
        change = 100 * (loss - previous) / max(previous, 1e-12)
        self.judged(
            f"mean loss {loss:.4f} of {label}: {change:+.2f}% vs {previous:.4f} ({previous_label}), "
            f"lowest before {lowest:.4f}",
            f"must fall >= {self.diff_percent:g}% per {self.unit} and never exceed the lowest by "
            f"> {self.increase_threshold_percent:g}%",
        )
        if loss > limit:
            return self._fire(
                f"mean loss of {label} rose to {loss:.4f}, more than {self.increase_threshold_percent:g}% "
                f"above the lowest before it, {lowest:.4f} ({lowest_label})"
            )
        if loss > previous * (1 - self.diff_percent / 100):
            return self._fire(
                f"mean loss of {label} {loss:.4f} did not decrease by {self.diff_percent:g}% from "
                f"{previous:.4f} ({previous_label}): {change:+.2f}%"
            )
        return False
