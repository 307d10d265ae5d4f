"""The demo's outcome: exit codes, the failure it raises, its result, progress lines and the summary."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from dogclf import contract
from localcloud.lambdas.runner import InvocationRecord

# Notification subjects that mean the pipeline stopped short of a deployed model.
# "Model deploy failed" / "Model rolled back" are the endpoint's real outcome (pipeline.endpoint_lifecycle).
# "... not started" is a stage that recorded a permanent error instead of starting the next job.
FAILURE_SUBJECTS = ("rejected", "failed", "stopped", "no model", "not deployed", "rolled back", "not started")

EXIT_OK = 0
EXIT_PIPELINE_FAILED = 1
EXIT_GATE_REJECTED = 2
EXIT_TIMEOUT = 3
EXIT_WEIGHTS_UNAVAILABLE = 4  # --weights imagenet, and the file is neither cached nor downloadable


class PipelineFailedError(RuntimeError):
    def __init__(self, reason: str, exit_code: int = EXIT_PIPELINE_FAILED) -> None:
        super().__init__(reason)
        self.exit_code = exit_code


@dataclass
class DemoResult:
    exit_code: int
    reason: str = ""
    stage_seconds: dict[str, float] = field(default_factory=dict)
    features_job: dict[str, Any] = field(default_factory=dict)  # empty with AugmentTrials=true
    tuning_job: dict[str, Any] = field(default_factory=dict)
    training_job: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] = field(default_factory=dict)
    endpoint: dict[str, Any] = field(default_factory=dict)
    predictions: dict[str, Any] = field(default_factory=dict)  # result key -> result JSON
    artifacts: dict[str, str] = field(default_factory=dict)  # profiler report, loss plot paths
    notifications: list[dict[str, str]] = field(default_factory=list)
    poller_errors: list[str] = field(default_factory=list)  # the local S3 event poller's errors
    backbone: str = ""  # which weights the jobs trained with, and why (localcloud.demo.weights)


class Progress:
    """Timestamped progress lines and the stage timer."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.stage_seconds: dict[str, float] = {}
        self._stage: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def say(self, text: str) -> None:
        with self._lock:
            print(f"[{time.monotonic() - self.started:6.1f}s] {text}", flush=True)

    def stage(self, name: str) -> None:
        now = time.monotonic()
        if self._stage:
            previous, began = self._stage
            self.stage_seconds[previous] = now - began
        self._stage = (name, now)
        self.say(f"== {name}")

    def finish(self) -> None:
        if self._stage:
            previous, began = self._stage
            self.stage_seconds[previous] = time.monotonic() - began
            self._stage = None

    def on_record(self, record: InvocationRecord) -> None:
        idle_tick = isinstance(record.payload, dict) and record.payload.get("action") == "nothing pending"
        if record.ok and idle_tick:
            return  # the endpoint reconcile's schedule with nothing to do: a line every few seconds
        outcome = "ok" if record.ok else f"ERROR {record.error}"
        retry = f" (attempt {record.attempt})" if record.attempt > 1 else ""
        self.say(f"lambda {record.function}{retry}: {record.summary} -> {outcome} [{record.duration_s:.1f}s]")


# -- summary ----------------------------------------------------------------------------------------
def print_summary(result: DemoResult, progress: Progress, total_s: float) -> None:
    print("\n" + "=" * 78)
    print("SUMMARY")
    if result.backbone:
        print(f"backbone:              {result.backbone}")
    _print_training(result)
    if result.decision:
        _print_decision(result.decision)
    if result.endpoint:
        print(f"endpoint:              {result.endpoint['EndpointName']} {result.endpoint['EndpointStatus']}")
    for key, prediction in result.predictions.items():
        true_class = key.split("/")[-2].split(".", 1)[-1]  # results/demo/<NNN.Class>/<file>.json
        print(f"prediction {key}: {_short_prediction(prediction)} (true class {true_class})")
    for name, path in result.artifacts.items():
        print(f"{name + ':':<22} {path}")
    print("\nstage timings (wall seconds):")
    for stage, seconds in progress.stage_seconds.items():
        print(f"  {stage:<20} {seconds:7.1f}")
    print(f"  {'total':<20} {total_s:7.1f}")
    if result.exit_code:
        print(f"\nFAILED (exit {result.exit_code}): {result.reason}")
        if result.poller_errors:  # uploads whose S3 events may never have reached a function
            print(f"S3 event poller errors ({len(result.poller_errors)}, last 5):")
            for error in result.poller_errors[-5:]:
                print(f"  {error}")
    print("=" * 78, flush=True)


def _print_training(result: DemoResult) -> None:
    if result.features_job:
        job = result.features_job
        print(f"features job:          {job['TrainingJobName']} {job['TrainingJobStatus']}")
        print(f"features:              {job.get('ModelArtifacts', {}).get('S3ModelArtifacts', '-')}")
    best = result.tuning_job.get("BestTrainingJob", {})
    if best:
        objective = best.get("FinalHyperParameterTuningJobObjectiveMetric", {})
        print(f"best trial:            {best.get('TrainingJobName')}")
        print(f"best hyperparameters:  {json.dumps(best.get('TunedHyperParameters', {}))}")
        if objective:
            print(f"best objective:        {objective.get('MetricName')} = {objective.get('Value')}")
    if result.training_job:
        metrics = {
            m["MetricName"]: round(m["Value"], 4) for m in result.training_job.get("FinalMetricDataList", [])
        }
        print(f"profiled job:          {result.training_job['TrainingJobName']}")
        print(f"final metrics:         {json.dumps(metrics)}")
        service = result.training_job.get("DebugRuleEvaluationStatuses", []) + result.training_job.get(
            "ProfilerRuleEvaluationStatuses", []
        )
        if service:  # builtin mode only; locally derived from the in-script verdicts (no rule containers)
            print("Debugger service rule statuses (builtin mode):")
            for rule in service:
                print(f"  {rule['RuleConfigurationName']:<28} {rule['RuleEvaluationStatus']}")


def _print_decision(decision: dict[str, Any]) -> None:
    if decision.get("rules"):
        print("rule verdicts the gate counted (in-script = evaluated inside train_model.py):")
        for rule in decision["rules"]:
            steps = "-" if rule.get("steps") is None else f"{rule['steps']} saved steps"
            print(
                f"  {rule.get('source') or 'no verdict':<10} {rule['rule']:<26} {rule['status']:<14} "
                f"{steps:<16} {'blocking' if rule.get('blocking') else 'warns only'}"
            )
            if rule.get("blocking") and rule.get("figure"):
                # What the rule judged and against what: a real problem reads apart from a noisy one.
                print(f"{'':13}judged {rule['figure']}")
                threshold = rule.get("threshold") or "-"
                print(f"{'':13}threshold: {threshold}; saved steps {rule.get('step_range') or '-'}")
    if contract.PROFILER_REPORT_RULE in decision.get("rule_verdicts", {}):
        findings = decision.get("profiler_findings") or []
        print(f"{contract.PROFILER_REPORT_RULE} findings:  {', '.join(findings) or 'none'}")
    print(
        f"gate decision:         {'DEPLOY' if decision.get('deploy') else 'REJECT'} "
        f"({decision.get('metric_name')}={decision.get('metric_value')} "
        f"vs threshold {decision.get('threshold')}; endpoint {decision.get('endpoint_action')})"
    )
    for reason in decision.get("reasons", []):
        print(f"  reason: {reason}")
    for warning in decision.get("warnings", []):
        print(f"  warning: {warning}")


def _short_prediction(prediction: Any) -> str:
    if isinstance(prediction, dict):
        top = prediction.get("predictions") or prediction.get("top_k") or prediction.get("prediction")
        if isinstance(top, list) and top:
            return json.dumps(top[0])
        if top is not None:
            return json.dumps(top)
    return json.dumps(prediction)[:200]
