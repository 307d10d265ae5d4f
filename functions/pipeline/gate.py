"""The quality gate as a pure function: what the job reported in, a decision with its reasons out.

No I/O here (deploy_stage.py reads the job and its output archive, and acts on the decision), so
every rule of the policy is tested directly (tests/functions/test_gate.py). Policy, as docs/deploy.md
states it:

- the job must be Completed and report the gate metric at or above the threshold;
- every blocking rule needs a verdict, and only NoIssuesFound passes: IssuesFound, Error, "not
  enough data" and no verdict at all block, and the reason says which;
- a missing or unreadable rule_verdicts.json is not a pass (the in-script rules did not report);
- one verdict per rule. In builtin debugger mode a rule has two evaluations (the script's and the
  Debugger service's rule container); the worse of the finished ones counts, once. A service status
  still InProgress (rule containers run on after the job) or Stopped is no verdict;
- non-blocking rules that find issues, fail or lack data are warnings;
- the ProfilerReport findings (the profiler rules that triggered) are listed in the decision, as
  warnings, or as reasons for those named in the blocking rules (the profiler rule, or ProfilerReport
  itself to block on any finding).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from dogclf import contract

IN_SCRIPT = "in-script"
SERVICE = "service"
NOT_ENOUGH_DATA_STATUS = "NotEnoughData"  # the gate's own name for a rule that could not evaluate
NO_VERDICT = "NoVerdict"
# Worst first: which of a rule's two evaluations counts.
_SEVERITY = (contract.ISSUES_FOUND, contract.ERROR, NOT_ENOUGH_DATA_STATUS, contract.NO_ISSUES_FOUND)
_NOT_VERDICTS = (contract.IN_PROGRESS, contract.STOPPED)


class VerdictsFormatError(ValueError):
    """rule_verdicts.json is not the documented shape (permanent: the same file never changes)."""


@dataclass(frozen=True)
class RuleVerdict:
    rule: str
    status: str  # a RuleEvaluationStatus, or NOT_ENOUGH_DATA_STATUS
    source: str  # IN_SCRIPT or SERVICE
    details: str = ""
    steps: int | None = None  # steps the in-script rule evaluated, when it says
    findings: tuple[str, ...] = ()  # ProfilerReport: the profiler rules that triggered
    # In-script rules also say what they judged (contract.FIGURE_KEY, THRESHOLD_KEY, STEP_RANGE_KEY).
    figure: str = ""
    threshold: str = ""
    step_range: str = ""

    def judged(self) -> str:
        """'judged <figure>; threshold: <threshold>; steps <a-b>', or '' when the rule did not say."""
        if not self.figure:
            return ""
        parts = [f"judged {self.figure}", f"threshold: {self.threshold}" if self.threshold else ""]
        parts.append(f"steps {self.step_range}" if self.step_range else "")
        return "; ".join(part for part in parts if part)


@dataclass
class GateDecision:
    training_job_name: str
    deploy: bool
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    metric_name: str = ""
    metric_value: float | None = None
    threshold: float = 0.0
    blocking_rules: list[str] = field(default_factory=list)
    # RuleConfigurationName -> the one status that counted (kept flat for the CLI and old readers).
    rule_verdicts: dict[str, str] = field(default_factory=dict)
    # The same, with where it came from, its details and how many steps it rests on.
    rules: list[dict[str, Any]] = field(default_factory=list)
    profiler_findings: list[str] = field(default_factory=list)
    endpoint_action: str = "none"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_in_script_verdicts(document: Any) -> list[RuleVerdict]:
    """rule_verdicts.json ({"rules": [{RuleConfigurationName, RuleEvaluationStatus, StatusDetails,
    Step...}]}) as verdicts; VerdictsFormatError when it is not that shape."""
    if not isinstance(document, Mapping) or not isinstance(document.get("rules"), list):
        raise VerdictsFormatError('rule_verdicts.json has no "rules" list')
    verdicts = []
    for entry in document["rules"]:
        if not isinstance(entry, Mapping):
            raise VerdictsFormatError(f"rule_verdicts.json entry is not an object: {entry!r:.100}")
        name, status = entry.get("RuleConfigurationName"), entry.get("RuleEvaluationStatus")
        if not isinstance(name, str) or not isinstance(status, str):
            raise VerdictsFormatError(f"rule_verdicts.json entry lacks a name or status: {entry!r:.200}")
        details = str(entry.get("StatusDetails") or "")
        verdicts.append(
            RuleVerdict(
                rule=name,
                status=_normalized_status(entry, status),
                source=IN_SCRIPT,
                details=details,
                steps=_steps(entry),
                findings=_findings(entry),
                figure=_text(entry, contract.FIGURE_KEY),
                threshold=_text(entry, contract.THRESHOLD_KEY),
                step_range=_text(entry, contract.STEP_RANGE_KEY),
            )
        )
    return verdicts


def parse_service_statuses(statuses: Sequence[Mapping[str, Any]]) -> list[RuleVerdict]:
    """DebugRuleEvaluationStatuses / ProfilerRuleEvaluationStatuses of DescribeTrainingJob."""
    return [
        RuleVerdict(
            rule=str(status["RuleConfigurationName"]),
            status=str(status.get("RuleEvaluationStatus", "")),
            source=SERVICE,
            details=str(status.get("StatusDetails") or ""),
        )
        for status in statuses
    ]


def decide(
    *,
    training_job_name: str,
    job_status: str,
    failure_reason: str | None,
    final_metrics: Mapping[str, float],
    metric_name: str,
    threshold: float,
    blocking_rules: Collection[str],
    in_script: Sequence[RuleVerdict] | None,
    service: Sequence[RuleVerdict] = (),
    in_script_problem: str | None = None,
) -> GateDecision:
    """The decision for one finished training job.

    ``in_script`` is None when rule_verdicts.json is missing or unreadable (``in_script_problem``
    then says why); ``service`` holds the Debugger service's statuses (builtin mode only)."""
    decision = GateDecision(
        training_job_name=training_job_name,
        deploy=False,
        metric_name=metric_name,
        threshold=threshold,
        blocking_rules=sorted(blocking_rules),
    )
    if job_status != "Completed":
        decision.reasons.append(f"training job {job_status}: {failure_reason or 'no reason given'}")
        return decision

    decision.metric_value = final_metrics.get(metric_name)
    if decision.metric_value is None:
        decision.reasons.append(f"metric {metric_name} missing from FinalMetricDataList")
    elif decision.metric_value < threshold:
        decision.reasons.append(
            f"{metric_name} {decision.metric_value:.4f} is below the threshold {threshold}"
        )

    if in_script is None:
        decision.reasons.append(
            in_script_problem
            or f"{contract.RULE_VERDICTS_FILE} missing from the job output (in-script rules did not report)"
        )
    counted = _one_verdict_per_rule([*(in_script or ()), *service])
    blocking = set(blocking_rules)
    for rule in sorted(set(counted) | (blocking - set(contract.PROFILER_RULE_NAMES))):
        verdict = counted.get(rule)
        _judge(decision, rule, verdict, rule in blocking, in_script is not None)
    _judge_profiler_findings(
        decision, counted.get(contract.PROFILER_REPORT_RULE), blocking, in_script is not None
    )
    decision.deploy = not decision.reasons
    return decision


def _one_verdict_per_rule(verdicts: Sequence[RuleVerdict]) -> dict[str, RuleVerdict]:
    """The verdict that counts for each rule: the worst finished one (IssuesFound > Error > not
    enough data > NoIssuesFound); InProgress/Stopped service statuses are no verdict."""
    counted: dict[str, RuleVerdict] = {}
    for verdict in verdicts:
        if verdict.status in _NOT_VERDICTS:
            continue
        current = counted.get(verdict.rule)
        if current is None or _rank(verdict) < _rank(current):
            counted[verdict.rule] = verdict
        elif _rank(verdict) == _rank(current) and current.source == SERVICE and verdict.source == IN_SCRIPT:
            counted[verdict.rule] = verdict  # same status: keep the one with step counts and findings
    return counted


def _rank(verdict: RuleVerdict) -> int:
    # An unknown status ranks with Error: something went wrong, it is not a pass.
    return _SEVERITY.index(verdict.status) if verdict.status in _SEVERITY else 1


def _judge(
    decision: GateDecision, rule: str, verdict: RuleVerdict | None, blocking: bool, have_verdicts: bool
) -> None:
    status = verdict.status if verdict else NO_VERDICT
    decision.rule_verdicts[rule] = status
    decision.rules.append(
        {
            "rule": rule,
            "status": status,
            "blocking": blocking,
            "source": verdict.source if verdict else None,
            "steps": verdict.steps if verdict else None,
            "details": verdict.details if verdict else "",
            # What the rule judged, against what, over which saved steps (in-script rules only).
            "figure": verdict.figure if verdict else "",
            "threshold": verdict.threshold if verdict else "",
            "step_range": verdict.step_range if verdict else "",
        }
    )
    if status == contract.NO_ISSUES_FOUND or (rule == contract.PROFILER_REPORT_RULE and verdict):
        return  # the profiler report is judged by its findings, below
    label = f"{verdict.source} rule {rule}" if verdict else f"rule {rule}"
    if status == NO_VERDICT:
        # Reported once already when the whole file is missing; otherwise the rule is missing from it.
        if have_verdicts and blocking:
            decision.reasons.append(f"blocking rule {rule} reported no verdict (not a pass)")
        return
    explanation = {
        contract.ISSUES_FOUND: "found issues",
        contract.ERROR: "ended in Error (not a pass)",
        NOT_ENOUGH_DATA_STATUS: "had not enough data to evaluate (not a pass)",
    }.get(status, f"reported {status} (not a pass)")
    details = f": {verdict.details}" if verdict and verdict.details else ""
    judged = f" [{verdict.judged()}]" if verdict and verdict.judged() else ""
    # The judged figure goes first into the 700 characters: it tells a real problem from a noisy one.
    message = f"{label} {explanation}{details}"[: 700 - len(judged)] + judged
    (decision.reasons if blocking else decision.warnings).append(message)


def _judge_profiler_findings(
    decision: GateDecision, report: RuleVerdict | None, blocking: set[str], have_verdicts: bool
) -> None:
    if report is None:
        # A blocking profiler rule needs the report's verdict as much as a blocking Debugger rule.
        for rule in sorted(blocking & set(contract.PROFILER_RULE_NAMES)) if have_verdicts else ():
            decision.reasons.append(
                f"blocking rule {rule}: no {contract.PROFILER_REPORT_RULE} verdict (not a pass)"
            )
        return
    decision.profiler_findings = list(report.findings)
    block_all = contract.PROFILER_REPORT_RULE in blocking
    for finding in report.findings:
        message = f"{contract.PROFILER_REPORT_RULE}: {finding} triggered"
        (decision.reasons if block_all or finding in blocking else decision.warnings).append(message)
    if not report.findings and report.status not in (contract.NO_ISSUES_FOUND, contract.ISSUES_FOUND):
        message = f"{report.source} rule {contract.PROFILER_REPORT_RULE} reported {report.status}"
        (decision.reasons if block_all else decision.warnings).append(message)
    elif not report.findings and report.status == contract.ISSUES_FOUND:
        # The service's ProfilerReport says IssuesFound without naming them (they are in its HTML).
        message = (
            f"{report.source} rule {contract.PROFILER_REPORT_RULE} found issues (see the profiler report)"
        )
        (decision.reasons if block_all else decision.warnings).append(message)


# --- one rule_verdicts.json entry (written by dogclf.debugger; the shape is in dogclf.contract) ----


def _normalized_status(entry: Mapping[str, Any], status: str) -> str:
    """An Error whose details start with the contract's marker is "not enough data" (said so apart)."""
    details = str(entry.get("StatusDetails") or "")
    if status == contract.ERROR and details.startswith(contract.NOT_ENOUGH_DATA):
        return NOT_ENOUGH_DATA_STATUS
    return status


def _steps(entry: Mapping[str, Any]) -> int | None:
    steps = entry.get(contract.STEPS_EVALUATED_KEY)
    return steps if isinstance(steps, int) and not isinstance(steps, bool) and steps >= 0 else None


def _text(entry: Mapping[str, Any], key: str) -> str:
    """An optional text field (older verdict files lack it); anything but a string is ignored."""
    value = entry.get(key)
    return value if isinstance(value, str) else ""


def _findings(entry: Mapping[str, Any]) -> tuple[str, ...]:
    findings = entry.get(contract.PROFILER_FINDINGS_KEY)
    if findings is None:
        return ()
    if not isinstance(findings, list) or not all(isinstance(item, str) for item in findings):
        raise VerdictsFormatError(
            f"{entry.get('RuleConfigurationName')}.{contract.PROFILER_FINDINGS_KEY} is not a list of names"
        )
    return tuple(findings)
