"""In-script versions of five SageMaker Debugger built-in rules, as smdebug ``Rule`` subclasses.

SageMaker Debugger is closed to new customers and its built-in rules ship only in AWS's rule
container, so train_model.py evaluates these on the job's saved trial when training ends. Each rule
takes the parameters, defaults and comparison of AWS's built-in rule ("List of Debugger built-in
rules", https://docs.aws.amazon.com/sagemaker/latest/dg/debugger-built-in-rules.html), on the tensors
of the parameters that train (the head: the frozen backbone has no gradients). Where AWS leaves a
choice open (which losses, per step or per pass, which mode) the rules judge **pass means**: the mean
loss of one epoch's training steps, or of one validation pass. Single mini-batch losses at batch size
16 differ by more than a healthy run's trend (docs/contracts.md, "Debugger rules", has the figures
from the real-data calibration bench, bench/bench_rule_calibration.py).

- VanishingGradient(threshold=1e-7) [gradient_rules.py]: the mean absolute value of a gradient
  tensor at a TRAIN step falls below ``threshold``. Guard AWS's rule lacks: a step whose training loss
  is below ``converged_loss`` (1e-3) is not judged (the gradient of a loss near 0 is rightly near 0).
- PoorWeightInitialization(activation_inputs_regex, threshold=10.0, distribution_range=0.001,
  patience=5, steps=10) [gradient_rules.py]: over the first ``steps`` TRAIN steps, the ratio between
  the largest and smallest per-layer variance of activation (ReLU) inputs exceeds ``threshold``, or the
  5th-95th percentile spread of all gradients is below ``distribution_range``, or the loss has not
  decreased within the window. "Decreased": the median of its last ``patience`` losses is below the
  median of its first ``patience`` (one overshooting or hard batch does not decide). train_model.py
  passes steps=MIN_RULE_STEPS, threshold=POOR_INIT_VARIANCE_RATIO and an ``activation_inputs_regex``
  that selects the trained layers' activations (``TRAINED_ACTIVATION_INPUTS``: ReLU inputs in the
  head, and the head Linear's input and output, which hook_config saves): the frozen backbone's
  activation scales are fixed by its weights, not by an initialization that training starts from.
- Overfit(start_step=0, patience=1, ratio_threshold=0.1) [loss_rules.py]: (mean validation loss -
  mean training loss) / mean training loss exceeds ``ratio_threshold`` for ``patience`` consecutive
  evaluations. An evaluation is one validation pass, compared with the epoch of TRAIN steps before it.
  train_model.py passes ratio_threshold=OVERFIT_RATIO_THRESHOLD.
- Overtraining(patience_train=5, patience_validation=10, delta=0.01) [loss_rules.py]: training loss
  has not improved on its best by more than ``delta`` for ``patience_train`` epochs (epoch means), or
  validation loss for ``patience_validation`` validation passes (pass means).
- LossNotDecreasing(num_steps=10, diff_percent=0.1, increase_threshold_percent=5, mode=None)
  [loss_rules.py]: every ``num_steps`` steps the loss must have fallen by at least ``diff_percent``
  percent from the loss ``num_steps`` steps earlier, and never rise more than
  ``increase_threshold_percent`` percent above the lowest loss before it. mode=None checks EVAL, then
  TRAIN, then GLOBAL, using the first that has losses. "The loss at a step" is the mean of the window
  of ``num_steps`` losses that ends there (windows do not overlap); train_model.py passes mode="TRAIN",
  num_steps=None and diff_percent=LOSS_DECREASE_PERCENT: num_steps=None makes the window one epoch,
  so each comparison is an epoch's mean training loss against the previous epoch's, over the same
  images, and the first is epoch 1 against step 0's loss (AWS compares with the loss at the start).
  A loss that is not finite fires.

Verdicts. Each rule counts the saved steps it read. A rule that fired is IssuesFound. A rule that did
not fire but read fewer than ``contract.MIN_RULE_STEPS`` steps, or made no comparison at all, has not
passed: it is Error with StatusDetails starting ``contract.NOT_ENOUGH_DATA`` (AWS's rule container
would keep waiting for data; a finished job has no more to give). The gate treats both as not passed.
Every verdict also says what it judged (``Figure``), against what (``Threshold``) and over which saved
steps (``StepRange``): the gate's decision and the demo summary show them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from smdebug.exceptions import RuleEvaluationConditionMet
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
from dogclf.debugger.gradient_rules import (
    ALL_ACTIVATION_INPUTS,
    TRAINED_ACTIVATION_INPUTS,
    PoorWeightInitialization,
    VanishingGradient,
)
from dogclf.debugger.loss_rules import LossNotDecreasing, Overfit, Overtraining
from dogclf.debugger.rule_base import CONVERGED_LOSS, TrialRule, step_range

__all__ = [
    "ALL_ACTIVATION_INPUTS",
    "CONVERGED_LOSS",
    "ERROR",
    "ISSUES_FOUND",
    "NO_ISSUES_FOUND",
    "RULES",
    "TRAINED_ACTIVATION_INPUTS",
    "LossNotDecreasing",
    "Overfit",
    "Overtraining",
    "PoorWeightInitialization",
    "VanishingGradient",
    "Verdict",
    "evaluate_all",
    "evaluate_rule",
]


# Overfit's ratio_threshold for this pipeline (AWS's default is 0.1). A linear head on a few hundred
# real photos ends most healthy runs with validation loss up to 52% above training loss (Fashion-MNIST
# and digits, bench/bench_rule_calibration.py), so 0.1 warned on most healthy runs; memorising
# shuffled labels reaches 1.36. Overfit only warns (docs/contracts.md, "Debugger rules").
OVERFIT_RATIO_THRESHOLD = 1.0
# PoorWeightInitialization's activation variance ratio (AWS's default 10). The judged layers are the
# head Linear's input (batch-normalised, variance ~1) and its output (the logits, ~0.3 at a default
# init): in healthy runs the logits' variance grows past 10x its input's within the first 10 steps at
# Adam's lr 0.01 (the demo tuner's top), while a head initialised 1000x too large starts near 1e5.
POOR_INIT_VARIANCE_RATIO = 1000.0
# LossNotDecreasing's diff_percent per epoch (AWS's default 0.1). An epoch's mean loss over the same
# images still moves a few tenths of a percent when the weights do not (BatchNorm statistics of
# reshuffled batches, the last partial batch), so 0.1% is a coin toss on a run that does not learn;
# learning runs fall 18-57% per epoch in the calibration bench.
LOSS_DECREASE_PERCENT = 1.0

# RuleConfigurationName -> (rule class, parameters train_model.py passes over the documented defaults).
RULES: dict[str, tuple[type[TrialRule], dict[str, Any]]] = {
    VANISHING_GRADIENT: (VanishingGradient, {}),
    OVERFIT: (Overfit, {"ratio_threshold": OVERFIT_RATIO_THRESHOLD}),
    OVERTRAINING: (Overtraining, {}),
    POOR_WEIGHT_INITIALIZATION: (
        PoorWeightInitialization,
        {
            "steps": MIN_RULE_STEPS,
            "activation_inputs_regex": TRAINED_ACTIVATION_INPUTS,
            "threshold": POOR_INIT_VARIANCE_RATIO,
        },
    ),
    LOSS_NOT_DECREASING: (
        LossNotDecreasing,
        {"mode": "TRAIN", "num_steps": None, "diff_percent": LOSS_DECREASE_PERCENT},
    ),
}
assert tuple(RULES) == RULE_NAMES


@dataclass
class Verdict:
    RuleConfigurationName: str
    RuleEvaluationStatus: str
    StatusDetails: str
    Step: int | None
    StepsEvaluated: int = 0  # contract.STEPS_EVALUATED_KEY
    Figure: str = ""  # contract.FIGURE_KEY: what the rule judged last, or what made it fire
    Threshold: str = ""  # contract.THRESHOLD_KEY: the condition that figure was held against
    StepRange: str = ""  # contract.STEP_RANGE_KEY: "first-last" global step the rule read

    def log_line(self) -> str:
        step = f" at step {self.Step}" if self.Step is not None else ""
        judged = f" [judged {self.Figure}; threshold: {self.Threshold}; steps {self.StepRange}]"
        return (
            f"rule {self.RuleConfigurationName}: {self.RuleEvaluationStatus}{step} - {self.StatusDetails}"
            f"{judged if self.Figure else ''} ({self.StepsEvaluated} steps)"
        )


def evaluate_rule(rule: TrialRule, name: str, min_steps: int = MIN_RULE_STEPS) -> Verdict:
    steps = rule.base_trial.steps()
    if not steps:
        return Verdict(name, ERROR, f"{NOT_ENOUGH_DATA}no steps were saved", None, 0)
    try:
        invoke_rule(rule, start_step=0, end_step=max(steps) + 1, raise_eval_cond=True)
    except RuleEvaluationConditionMet as condition:
        return _verdict(rule, name, ISSUES_FOUND, rule.detail, int(condition.step))
    read = len(rule.steps_read)
    if read < min_steps or rule.checks == 0:
        why = (
            f"the rule read {read} saved steps, fewer than the {min_steps} it needs to decide"
            if read < min_steps
            else f"the rule read {read} saved steps but had nothing to compare"
        )
        counts = f"({rule.checks} checks; the trial has {len(steps)} steps)"
        return _verdict(rule, name, ERROR, f"{NOT_ENOUGH_DATA}{why} {counts}")
    detail = f"no issues found ({rule.checks} checks over {read} steps)"
    if isinstance(rule, VanishingGradient) and rule.converged_steps:
        detail += f"; {rule.converged_steps} steps had converged (loss < {rule.converged_loss:g})"
    if isinstance(rule, PoorWeightInitialization):
        detail += f"; {rule.summary()}"
    return _verdict(rule, name, NO_ISSUES_FOUND, detail)


def _verdict(rule: TrialRule, name: str, status: str, detail: str, step: int | None = None) -> Verdict:
    return Verdict(
        name,
        status,
        detail,
        step,
        len(rule.steps_read),
        Figure=rule.figure,
        Threshold=rule.threshold_text,
        StepRange=step_range(rule.steps_read),
    )


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
