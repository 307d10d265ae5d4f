"""Hyperparameter tuning: search strategies and the loop that runs trials as real training jobs.

Strategies (search.py): Random (seeded ``random.Random``), Bayesian (Optuna's TPE sampler through ask/tell,
seeded), Grid (every combination of the categorical ranges, as SageMaker's Grid allows only those).
Hyperband is refused. Each trial is a training job named ``<tuning job>-<NNN>-<8 hex>`` with
``TuningJobArn`` set; its objective is the last value of the objective metric in its
``FinalMetricDataList``.

``TrainingJobEarlyStoppingType: Auto`` applies SageMaker's median stopping rule: each time a running
trial reports its objective for the k-th time (its k-th epoch), it is stopped if that value is worse
than the median, over the finished trials that reported at least k values, of their running averages
up to k. At least ``EARLY_STOPPING_MIN_TRIALS`` finished trials are needed before any trial is
stopped. Reports are seen by polling the trial's metrics every ``POLL_SECONDS``, so two reports less
than that apart count as one. An early-stopped trial ends ``Stopped`` (its log says why); its last
value still informs the search strategy.

Managed spot (``EnableManagedSpotTraining``) is validated as SageMaker does (``MaxWaitTimeInSeconds``
present and >= ``MaxRuntimeInSeconds``; no ``MaxWaitTimeInSeconds`` without spot) and then runs
on-demand: local capacity is never reclaimed. ``CheckpointConfig`` is synced by the training runner.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from typing import TYPE_CHECKING, Any

from localcloud.sagemaker.exceptions import ValidationException
from localcloud.sagemaker.search import build_strategy, median_rule_stops, objective_of, trial_resource_config

if TYPE_CHECKING:
    from localcloud.sagemaker.registry import TrainingJob, TuningJob, TuningRegistry

logger = logging.getLogger("localcloud.sagemaker.runners.tuning")

POLL_SECONDS = 0.2


class TuningJobRunner:
    def __init__(self, registry: TuningRegistry, tuning_job: TuningJob) -> None:
        self.registry = registry
        self.tuning_job = tuning_job
        self.config = tuning_job.desc["HyperParameterTuningJobConfig"]
        self.definition = tuning_job.desc["TrainingJobDefinition"]
        self.objective = self.config["HyperParameterTuningJobObjective"]
        self.early_stopping = self.config.get("TrainingJobEarlyStoppingType", "Off") == "Auto"
        self.series: dict[str, list[float]] = {}  # trial -> its objective reports, in order
        self._last_report: dict[str, float] = {}  # trial -> Timestamp of the last report seen
        self.finished_series: list[list[float]] = []
        self.early_stopped: set[str] = set()

    def run(self) -> None:
        try:
            self._search()
        except Exception as error:  # the tuning job fails; the emulator keeps serving
            logger.exception("tuning job %s crashed", self.tuning_job.name)
            self._finish("Failed", f"InternalServerError: {type(error).__name__}: {error}")

    def _search(self) -> None:
        strategy = build_strategy(self.config)
        limits = self.config["ResourceLimits"]
        max_jobs = limits.get("MaxNumberOfTrainingJobs") or strategy.capacity() or 1
        if strategy.capacity() is not None:
            max_jobs = min(max_jobs, strategy.capacity() or 0)
        max_parallel = limits["MaxParallelTrainingJobs"]
        running: dict[str, Any] = {}  # trial name -> strategy handle
        launched = 0
        while True:
            for name in list(running):
                self._observe(name)
            for name in [name for name in running if self.registry.training_job(name).done.is_set()]:
                job = self.registry.training_job(name)
                value = objective_of(job.final_metrics, self.objective["MetricName"])
                early_stopped = name in self.early_stopped
                if job.desc["TrainingJobStatus"] != "Completed" and not early_stopped:
                    value = None
                if value is not None:
                    self.finished_series.append(self.series.get(name) or [value])
                strategy.report(running.pop(name), value)
            self._refresh()
            stopping = self.tuning_job.stop_requested.is_set()
            if not stopping and launched < max_jobs and len(running) < max_parallel:
                handle, values = strategy.suggest()
                launched += 1
                running[self._launch(launched, values)] = handle
                continue
            if not running:
                break
            time.sleep(POLL_SECONDS)
        self._refresh()
        if self.tuning_job.stop_requested.is_set():
            self._finish("Stopped")
            return
        counters = self.tuning_job.desc["TrainingJobStatusCounters"]
        if counters["Completed"] == 0:
            self._finish("Failed", "All training jobs failed. See the FailureReason of the training jobs.")
        else:
            self._finish("Completed")

    def _observe(self, name: str) -> None:
        """Record a trial's new objective report; apply the median rule to it when early stopping is on."""
        job = self.registry.training_job(name)
        for metric in list(job.final_metrics):
            if metric["MetricName"] != self.objective["MetricName"]:
                continue
            stamp, value = float(metric["Timestamp"]), float(metric["Value"])
            if self._last_report.get(name) == stamp or not math.isfinite(value):
                return
            self._last_report[name] = stamp
            series = self.series.setdefault(name, [])
            series.append(value)
            if (
                self.early_stopping
                and job.desc["TrainingJobStatus"] == "InProgress"
                and name not in self.early_stopped
                and median_rule_stops(
                    value, len(series), self.finished_series, self.objective["Type"] == "Maximize"
                )
            ):
                self._stop_early(job, value, len(series))
            return

    def _stop_early(self, job: TrainingJob, value: float, step: int) -> None:
        self.early_stopped.add(job.name)
        message = (
            f"Stopped early by {self.tuning_job.name}: {self.objective['MetricName']}={value:g} at report "
            f"{step} is worse than the median of the earlier trials' running averages (median stopping rule)."
        )
        self.registry.context.job_log_line(job.name, message)
        logger.info("%s", message)
        try:
            self.registry.stop_trial(job)
        except ValidationException:  # it finished in the meantime: nothing to stop
            self.early_stopped.discard(job.name)

    def _launch(self, index: int, values: dict[str, str]) -> str:
        name = f"{self.tuning_job.name}-{index:03d}-{uuid.uuid4().hex[:8]}"
        hyperparameters = dict(self.definition.get("StaticHyperParameters") or {})
        hyperparameters.update(values)
        # SageMaker adds this to every trial; the toolkit keeps it out of the script's arguments.
        hyperparameters["_tuning_objective_metric"] = f'"{self.objective["MetricName"]}"'
        params: dict[str, Any] = {
            "TrainingJobName": name,
            "HyperParameters": hyperparameters,
            "AlgorithmSpecification": self.definition["AlgorithmSpecification"],
            "RoleArn": self.definition["RoleArn"],
            "InputDataConfig": self.definition.get("InputDataConfig") or [],
            "OutputDataConfig": self.definition["OutputDataConfig"],
            "ResourceConfig": trial_resource_config(self.definition),
            "StoppingCondition": self.definition["StoppingCondition"],
        }
        for optional in (
            "Environment",
            "VpcConfig",
            "EnableNetworkIsolation",
            "CheckpointConfig",
            "EnableManagedSpotTraining",
        ):
            if optional in self.definition:
                params[optional] = self.definition[optional]
        self.registry.launch_trial(self.tuning_job, params, values)
        return name

    def _refresh(self) -> None:
        """Recompute counters and the best trial from the trials' current state (no event)."""
        summaries = [
            self.registry.trial_summary(self.tuning_job, name) for name in list(self.tuning_job.trial_names)
        ]
        status_counters = {
            "Completed": 0,
            "InProgress": 0,
            "RetryableError": 0,
            "NonRetryableError": 0,
            "Stopped": 0,
        }
        objective_counters = {"Succeeded": 0, "Pending": 0, "Failed": 0}
        for summary in summaries:
            status = summary["TrainingJobStatus"]
            key = {"Failed": "NonRetryableError", "Stopping": "InProgress"}.get(status, status)
            status_counters[key] += 1
            objective_counters[summary["ObjectiveStatus"]] += 1
        scored = [s for s in summaries if s["ObjectiveStatus"] == "Succeeded"]
        fields: dict[str, Any] = {
            "TrainingJobStatusCounters": status_counters,
            "ObjectiveStatusCounters": objective_counters,
        }
        if scored:
            pick = max if self.objective["Type"] == "Maximize" else min
            fields["BestTrainingJob"] = pick(
                scored, key=lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
            )
        self.registry.update_tuning_job(self.tuning_job, emit=False, **fields)

    def _finish(self, status: str, reason: str | None = None) -> None:
        fields: dict[str, Any] = {
            "HyperParameterTuningJobStatus": status,
            "HyperParameterTuningEndTime": time.time(),
        }
        if reason:
            fields["FailureReason"] = reason
        self.registry.update_tuning_job(self.tuning_job, emit=True, **fields)
        self.tuning_job.done.set()
