"""The quality gate's policy (pipeline.gate), input by input: no AWS, no archive, no settings."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.gate import (
    GateDecision,
    VerdictsFormatError,
    decide,
    parse_in_script_verdicts,
    parse_service_statuses,
)

BLOCKING = ("VanishingGradient", "PoorWeightInitialization", "LossNotDecreasing")
ALL_RULES = ("VanishingGradient", "Overfit", "Overtraining", "PoorWeightInitialization", "LossNotDecreasing")


def entry(rule: str, status: str = "NoIssuesFound", details: str = "", steps: int | None = 40, **extra: Any):
    """One rule_verdicts.json entry, as dogclf.debugger writes it."""
    document = {
        "RuleConfigurationName": rule,
        "RuleEvaluationStatus": status,
        "StatusDetails": details,
        "Step": 7,
    }
    if steps is not None:
        document["StepsEvaluated"] = steps
    return {**document, **extra}


def verdicts(*overrides: dict[str, Any], profiler: list[str] | None = None) -> dict[str, Any]:
    """A healthy rule_verdicts.json, with some entries replaced."""
    by_rule = {rule: entry(rule) for rule in ALL_RULES}
    by_rule.update({override["RuleConfigurationName"]: override for override in overrides})
    rules = list(by_rule.values())
    if profiler is not None:
        rules.append(
            entry(
                "ProfilerReport",
                "IssuesFound" if profiler else "NoIssuesFound",
                steps=None,
                IssuesFound=profiler,
            )
        )
    return {"rules": rules}


def gate(
    document: dict[str, Any] | None = None,
    *,
    accuracy: float | None = 0.8,
    status: str = "Completed",
    blocking: tuple[str, ...] = BLOCKING,
    service: list[dict[str, Any]] | None = None,
    problem: str | None = None,
) -> GateDecision:
    return decide(
        training_job_name="dogclf-train-5b2e8f0c1a3d",
        job_status=status,
        failure_reason="AlgorithmError: CUDA out of memory" if status == "Failed" else None,
        final_metrics={} if accuracy is None else {"test:accuracy": accuracy, "valid:accuracy": 0.9},
        metric_name="test:accuracy",
        threshold=0.6,
        blocking_rules=blocking,
        in_script=None if document is None else parse_in_script_verdicts(document),
        in_script_problem=problem,
        service=parse_service_statuses(service or []),
    )


def test_healthy_job_passes_with_every_rule_and_its_step_count_in_the_decision() -> None:
    decision = gate(verdicts(profiler=[]))
    assert decision.deploy is True and decision.reasons == [] and decision.warnings == []
    assert decision.rule_verdicts == {
        "LossNotDecreasing": "NoIssuesFound",
        "Overfit": "NoIssuesFound",
        "Overtraining": "NoIssuesFound",
        "PoorWeightInitialization": "NoIssuesFound",
        "ProfilerReport": "NoIssuesFound",
        "VanishingGradient": "NoIssuesFound",
    }
    steps = {rule["rule"]: rule["steps"] for rule in decision.rules}
    assert steps["VanishingGradient"] == 40 and steps["ProfilerReport"] is None
    assert {rule["source"] for rule in decision.rules} == {"in-script"}
    assert decision.metric_value == 0.8 and decision.profiler_findings == []


def test_blocking_rule_with_issues_blocks_and_a_warning_rule_only_warns() -> None:
    decision = gate(
        verdicts(
            entry("VanishingGradient", "IssuesFound", "gradients below 1e-07 at step 12"),
            entry("Overfit", "IssuesFound", "valid loss 40% above train loss"),
        )
    )
    assert decision.deploy is False
    assert decision.reasons == [
        "in-script rule VanishingGradient found issues: gradients below 1e-07 at step 12"
    ]
    assert decision.warnings == ["in-script rule Overfit found issues: valid loss 40% above train loss"]


def test_error_verdict_of_a_blocking_rule_is_not_a_pass() -> None:
    decision = gate(verdicts(entry("LossNotDecreasing", "Error", "KeyError: 'CrossEntropyLoss_output_0'")))
    assert decision.deploy is False
    assert decision.reasons == [
        "in-script rule LossNotDecreasing ended in Error (not a pass): KeyError: 'CrossEntropyLoss_output_0'"
    ]
    assert decision.rule_verdicts["LossNotDecreasing"] == "Error"


def test_not_enough_data_is_not_a_pass_and_is_named_as_such() -> None:
    decision = gate(
        verdicts(
            entry("PoorWeightInitialization", "Error", "not enough data: 3 saved steps, 20 needed", steps=3),
            entry("Overtraining", "Error", "not enough data: 2 saved steps, 20 needed", steps=2),
        )
    )
    assert decision.deploy is False
    assert decision.reasons == [
        "in-script rule PoorWeightInitialization had not enough data to evaluate (not a pass): "
        "not enough data: 3 saved steps, 20 needed"
    ]
    assert decision.warnings == [
        "in-script rule Overtraining had not enough data to evaluate (not a pass): "
        "not enough data: 2 saved steps, 20 needed"
    ]
    assert decision.rule_verdicts["PoorWeightInitialization"] == "NotEnoughData"
    [rule] = [rule for rule in decision.rules if rule["rule"] == "PoorWeightInitialization"]
    assert rule["steps"] == 3 and rule["blocking"] is True


def test_missing_verdicts_file_is_not_a_pass() -> None:
    decision = gate(None)
    assert decision.deploy is False
    assert decision.reasons == [
        "rule_verdicts.json missing from the job output (in-script rules did not report)"
    ]
    # The blocking rules are still listed, with no verdict, but not as three more reasons.
    assert decision.rule_verdicts == dict.fromkeys(sorted(BLOCKING), "NoVerdict")


def test_unreadable_verdicts_file_says_why() -> None:
    decision = gate(None, problem="rule_verdicts.json unreadable: Expecting value: line 1 column 1")
    assert decision.reasons == ["rule_verdicts.json unreadable: Expecting value: line 1 column 1"]


def test_blocking_rule_missing_from_the_verdicts_is_not_a_pass() -> None:
    document = verdicts()
    document["rules"] = [
        rule for rule in document["rules"] if rule["RuleConfigurationName"] != "LossNotDecreasing"
    ]
    decision = gate(document)
    assert decision.reasons == ["blocking rule LossNotDecreasing reported no verdict (not a pass)"]


@pytest.mark.parametrize(
    "document",
    [{}, {"rules": "all fine"}, {"rules": [{"RuleConfigurationName": "Overfit"}]}, {"rules": [3]}],
)
def test_verdicts_of_the_wrong_shape_are_refused(document: dict[str, Any]) -> None:
    with pytest.raises(VerdictsFormatError):
        parse_in_script_verdicts(document)


def test_profiler_findings_are_warnings_listed_in_the_decision() -> None:
    decision = gate(verdicts(profiler=["StepOutlier", "CPUBottleneck"]))
    assert decision.deploy is True
    assert decision.profiler_findings == ["StepOutlier", "CPUBottleneck"]
    assert decision.warnings == [
        "ProfilerReport: StepOutlier triggered",
        "ProfilerReport: CPUBottleneck triggered",
    ]
    assert decision.rule_verdicts["ProfilerReport"] == "IssuesFound"


def test_a_profiler_rule_configured_as_blocking_blocks() -> None:
    decision = gate(
        verdicts(profiler=["StepOutlier", "CPUBottleneck"]), blocking=(*BLOCKING, "CPUBottleneck")
    )
    assert decision.deploy is False
    assert decision.reasons == ["ProfilerReport: CPUBottleneck triggered"]
    assert decision.warnings == ["ProfilerReport: StepOutlier triggered"]


def test_profiler_findings_must_be_a_list_of_names() -> None:
    with pytest.raises(VerdictsFormatError, match="IssuesFound"):
        parse_in_script_verdicts(verdicts(entry("ProfilerReport", "IssuesFound", IssuesFound="StepOutlier")))


def test_a_rule_evaluated_in_script_and_by_the_service_counts_once() -> None:
    """builtin mode: both report LossNotDecreasing; one reason, not two."""
    decision = gate(
        verdicts(entry("LossNotDecreasing", "IssuesFound", "loss flat for 25 steps")),
        service=[
            {"RuleConfigurationName": "LossNotDecreasing", "RuleEvaluationStatus": "IssuesFound"},
            {"RuleConfigurationName": "VanishingGradient", "RuleEvaluationStatus": "NoIssuesFound"},
        ],
    )
    assert decision.reasons == ["in-script rule LossNotDecreasing found issues: loss flat for 25 steps"]
    assert [rule["rule"] for rule in decision.rules].count("LossNotDecreasing") == 1


def test_the_worse_of_the_two_evaluations_counts_and_in_progress_is_no_verdict() -> None:
    decision = gate(
        verdicts(),
        service=[
            {"RuleConfigurationName": "PoorWeightInitialization", "RuleEvaluationStatus": "IssuesFound"},
            {"RuleConfigurationName": "VanishingGradient", "RuleEvaluationStatus": "InProgress"},
            {
                "RuleConfigurationName": "Overtraining",
                "RuleEvaluationStatus": "Error",
                "StatusDetails": "OOM",
            },
        ],
    )
    assert decision.reasons == ["service rule PoorWeightInitialization found issues"]
    assert decision.warnings == ["service rule Overtraining ended in Error (not a pass): OOM"]
    # Still InProgress at the service: the in-script verdict is the one that counts.
    [vanishing] = [rule for rule in decision.rules if rule["rule"] == "VanishingGradient"]
    assert vanishing["status"] == "NoIssuesFound" and vanishing["source"] == "in-script"


def test_service_profiler_report_issues_warn_without_names() -> None:
    decision = gate(
        verdicts(),
        service=[{"RuleConfigurationName": "ProfilerReport", "RuleEvaluationStatus": "IssuesFound"}],
    )
    assert decision.deploy is True
    assert decision.warnings == ["service rule ProfilerReport found issues (see the profiler report)"]


@pytest.mark.parametrize(
    ("accuracy", "reason"),
    [
        (0.41, "test:accuracy 0.4100 is below the threshold 0.6"),
        (None, "metric test:accuracy missing from FinalMetricDataList"),
    ],
)
def test_metric_below_threshold_or_missing_blocks(accuracy: float | None, reason: str) -> None:
    decision = gate(verdicts(), accuracy=accuracy)
    assert decision.deploy is False and decision.reasons == [reason]


def test_failed_job_is_rejected_with_its_failure_reason_alone() -> None:
    decision = gate(None, status="Failed", accuracy=None)
    assert decision.deploy is False
    assert decision.reasons == ["training job Failed: AlgorithmError: CUDA out of memory"]


def test_a_blocking_profiler_rule_without_a_profiler_report_is_not_a_pass() -> None:
    decision = gate(verdicts(), blocking=(*BLOCKING, "StepOutlier"))
    assert decision.reasons == ["blocking rule StepOutlier: no ProfilerReport verdict (not a pass)"]


# --- what each rule judged ------------------------------------------------------------------------
def test_a_blocking_reason_says_the_figure_the_threshold_and_the_steps():
    fired = entry(
        "LossNotDecreasing",
        "IssuesFound",
        "mean loss of epoch 2 rose to 3.1",
        Figure="mean loss 3.1000 of epoch 2: +40.00% vs 2.2143 (epoch 1)",
        Threshold="must fall >= 0.1% per epoch",
        StepRange="0-75",
    )
    decision = gate(verdicts(fired))
    assert not decision.deploy
    (reason,) = decision.reasons
    assert "LossNotDecreasing found issues: mean loss of epoch 2 rose to 3.1" in reason
    assert reason.endswith(
        "[judged mean loss 3.1000 of epoch 2: +40.00% vs 2.2143 (epoch 1); "
        "threshold: must fall >= 0.1% per epoch; steps 0-75]"
    )
    (counted,) = [rule for rule in decision.rules if rule["rule"] == "LossNotDecreasing"]
    assert (counted["figure"], counted["threshold"], counted["step_range"]) == (
        "mean loss 3.1000 of epoch 2: +40.00% vs 2.2143 (epoch 1)",
        "must fall >= 0.1% per epoch",
        "0-75",
    )


def test_long_details_never_cut_off_what_was_judged():
    fired = entry(
        "VanishingGradient", "IssuesFound", "x" * 2000, Figure="mean |gradient| 1e-9", Threshold="< 1e-7"
    )
    (reason,) = gate(verdicts(fired)).reasons
    assert len(reason) <= 700 and reason.endswith("[judged mean |gradient| 1e-9; threshold: < 1e-7]")


def test_verdicts_without_figures_still_read_and_non_text_figures_are_ignored():
    decision = gate(verdicts(entry("Overfit", "IssuesFound", "ratio 0.3", Figure=0.3)))
    assert decision.deploy and decision.warnings == ["in-script rule Overfit found issues: ratio 0.3"]
    (counted,) = [rule for rule in decision.rules if rule["rule"] == "Overfit"]
    assert counted["figure"] == ""
