"""The demo summary shows, for each blocking rule, what it judged: the figure, the threshold, the steps."""

from __future__ import annotations

from localcloud.demo.summary import DemoResult, Progress, contract, print_summary  # puts dogclf on the path
from pipeline.gate import decide, parse_in_script_verdicts


def _entry(rule: str, status: str, figure: str, threshold: str, steps: str) -> dict[str, object]:
    return {
        "RuleConfigurationName": rule,
        "RuleEvaluationStatus": status,
        "StatusDetails": "details",
        "Step": None,
        contract.STEPS_EVALUATED_KEY: 120,
        contract.FIGURE_KEY: figure,
        contract.THRESHOLD_KEY: threshold,
        contract.STEP_RANGE_KEY: steps,
    }


def test_each_blocking_rule_says_what_it_judged(capsys) -> None:
    document = {
        "rules": [
            _entry(
                contract.LOSS_NOT_DECREASING,
                contract.NO_ISSUES_FOUND,
                "mean loss 0.5551 of epoch 3: -26.63% vs 0.7566 (epoch 2)",
                "must fall >= 0.1% per epoch",
                "0-139",
            ),
            _entry(contract.OVERFIT, contract.ISSUES_FOUND, "ratio 0.204", "fires above 0.1", "0-152"),
        ]
    }
    decision = decide(
        training_job_name="dogclf-train-0123456789ab",
        job_status="Completed",
        failure_reason=None,
        final_metrics={"test:accuracy": 0.81},
        metric_name="test:accuracy",
        threshold=0.6,
        blocking_rules=[contract.LOSS_NOT_DECREASING],
        in_script=parse_in_script_verdicts(document),
    )
    print_summary(DemoResult(exit_code=0, decision=decision.to_dict()), Progress(), 1.0)
    lines = capsys.readouterr().out.splitlines()
    index = next(
        i for i, line in enumerate(lines) if contract.LOSS_NOT_DECREASING in line and "blocking" in line
    )
    assert lines[index + 1].strip() == "judged mean loss 0.5551 of epoch 3: -26.63% vs 0.7566 (epoch 2)"
    assert lines[index + 2].strip() == "threshold: must fall >= 0.1% per epoch; saved steps 0-139"
    # A warn-only rule keeps its one line; its figure is in the warning.
    overfit = next(i for i, line in enumerate(lines) if " Overfit " in line and "warns only" in line)
    assert "judged" not in lines[overfit + 1]
    assert any("warning:" in line and "[judged ratio 0.204" in line for line in lines)
