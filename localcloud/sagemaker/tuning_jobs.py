"""Hyperparameter tuning jobs: Create, Describe, Stop, List, and the trials' summaries.

Each tuning job is kept as the dict DescribeHyperParameterTuningJob returns. ``TuningJobRunner``
runs the search in its own thread and reaches the backend only through ``TuningRegistry``: it
launches trials (real training jobs, through ``TrainingJobs``), stops them, reads their summaries
and updates the tuning job's counters and status.
"""

from __future__ import annotations

import contextlib
import copy
import time
from typing import Any

from localcloud.sagemaker import paging
from localcloud.sagemaker.exceptions import (
    ResourceInUse,
    ResourceLimitExceeded,
    ResourceNotFound,
    ValidationException,
)
from localcloud.sagemaker.registry import BackendContext, TrainingJob, TuningJob
from localcloud.sagemaker.runners.tuning import TuningJobRunner
from localcloud.sagemaker.search import objective_of, validate_tuning_config
from localcloud.sagemaker.training_jobs import TrainingJobs


class TuningJobs:
    def __init__(self, context: BackendContext, training: TrainingJobs) -> None:
        self.context = context
        self.training = training
        self.jobs: dict[str, TuningJob] = {}

    # -- TuningRegistry: what the runner may call ------------------------------------------------------

    def training_job(self, name: str) -> TrainingJob:
        with self.context.lock:
            return self.training.jobs[name]

    def stop_trial(self, job: TrainingJob) -> None:
        """Stop one trial; ValidationException when it has already finished."""
        self.training.stop(job)

    def launch_trial(self, tuning_job: TuningJob, params: dict[str, Any], values: dict[str, str]) -> None:
        with self.context.lock:
            tuning_job.tuned[params["TrainingJobName"]] = values
        self.training.create_training_job(
            params, tuning_job_arn=tuning_job.desc["HyperParameterTuningJobArn"]
        )
        with self.context.lock:  # listed only once the job exists
            tuning_job.trial_names.append(params["TrainingJobName"])

    # -- the API --------------------------------------------------------------------------------------

    def create_hyper_parameter_tuning_job(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["HyperParameterTuningJobName"]
        config = params["HyperParameterTuningJobConfig"]
        definition = params.get("TrainingJobDefinition")
        if definition is None:
            raise ValidationException(
                "TrainingJobDefinition is required (several TrainingJobDefinitions: not supported locally)."
            )
        validate_tuning_config(config, definition)
        self.context.check_execution_role(definition["RoleArn"])
        limits = config["ResourceLimits"]
        if limits["MaxParallelTrainingJobs"] > self.context.max_parallel_training_jobs_limit:
            raise ResourceLimitExceeded(
                f"The value {limits['MaxParallelTrainingJobs']} for MaxParallelTrainingJobs exceeds "
                "the account limit "
                f"of {self.context.max_parallel_training_jobs_limit} (LOCALCLOUD_MAX_PARALLEL_TRAINING_JOBS)."
            )
        now = time.time()
        arn = self.context.arn("hyper-parameter-tuning-job", name)
        desc: dict[str, Any] = {
            "HyperParameterTuningJobName": name,
            "HyperParameterTuningJobArn": arn,
            "HyperParameterTuningJobConfig": config,
            "TrainingJobDefinition": definition,
            "HyperParameterTuningJobStatus": "InProgress",
            "CreationTime": now,
            "LastModifiedTime": now,
            "TrainingJobStatusCounters": {
                "Completed": 0,
                "InProgress": 0,
                "RetryableError": 0,
                "NonRetryableError": 0,
                "Stopped": 0,
            },
            "ObjectiveStatusCounters": {"Succeeded": 0, "Pending": 0, "Failed": 0},
        }
        tuning_job = TuningJob(name=name, desc=desc)
        with self.context.lock:
            if name in self.jobs:
                raise ResourceInUse(f"Hyperparameter tuning job {name} already exists ({arn}).")
            self.jobs[name] = tuning_job
            snapshot = copy.deepcopy(desc)
        self.context.events.remember_tags(arn, params)
        self.context.emit("SageMaker HyperParameter Tuning Job State Change", arn, snapshot)
        runner = TuningJobRunner(self, tuning_job)
        self.context.spawn(runner.run, f"tune-{name}")
        return {"HyperParameterTuningJobArn": arn}

    def get(self, name: str) -> TuningJob:
        with self.context.lock:
            tuning_job = self.jobs.get(name)
        if tuning_job is None:
            raise ResourceNotFound(f"Amazon SageMaker can't find a tuning job with name {name}")
        return tuning_job

    def update_tuning_job(self, tuning_job: TuningJob, emit: bool, **fields: Any) -> None:
        with self.context.lock:
            tuning_job.desc.update(fields)
            tuning_job.desc["LastModifiedTime"] = time.time()
            snapshot = copy.deepcopy(tuning_job.desc)
        if emit:
            self.context.emit(
                "SageMaker HyperParameter Tuning Job State Change",
                tuning_job.desc["HyperParameterTuningJobArn"],
                snapshot,
            )

    def describe_hyper_parameter_tuning_job(self, params: dict[str, Any]) -> dict[str, Any]:
        tuning_job = self.get(params["HyperParameterTuningJobName"])
        with self.context.lock:
            return copy.deepcopy(tuning_job.desc)

    def stop_hyper_parameter_tuning_job(self, params: dict[str, Any]) -> dict[str, Any]:
        tuning_job = self.get(params["HyperParameterTuningJobName"])
        with self.context.lock:
            status = tuning_job.desc["HyperParameterTuningJobStatus"]
            if status != "InProgress":
                raise ValidationException(
                    f"The request was rejected because the tuning job is in status {status}."
                )
        tuning_job.stop_requested.set()
        self.update_tuning_job(tuning_job, emit=True, HyperParameterTuningJobStatus="Stopping")
        for trial in list(tuning_job.trial_names):
            job = self.training.jobs[trial]
            with contextlib.suppress(ValidationException):  # already finished
                self.training.stop(job)
        return {}

    def list_hyper_parameter_tuning_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        keys = (
            "HyperParameterTuningJobName",
            "HyperParameterTuningJobArn",
            "HyperParameterTuningJobStatus",
            "CreationTime",
            "HyperParameterTuningEndTime",
            "LastModifiedTime",
            "TrainingJobStatusCounters",
            "ObjectiveStatusCounters",
        )
        with self.context.lock:
            rows = []
            for tuning_job in self.jobs.values():
                row = {key: copy.deepcopy(tuning_job.desc[key]) for key in keys if key in tuning_job.desc}
                config = tuning_job.desc["HyperParameterTuningJobConfig"]
                row["Strategy"] = config["Strategy"]
                row["ResourceLimits"] = copy.deepcopy(config["ResourceLimits"])
                rows.append(row)
        rows = paging.filter_rows(
            rows, params, "HyperParameterTuningJobName", "HyperParameterTuningJobStatus"
        )
        page, token = paging.page(
            rows,
            params,
            {
                "Name": "HyperParameterTuningJobName",
                "CreationTime": "CreationTime",
                "Status": "HyperParameterTuningJobStatus",
            },
            default_sort="Name",
        )
        return {"HyperParameterTuningJobSummaries": page, **token}

    def trial_summary(self, tuning_job: TuningJob, trial_name: str) -> dict[str, Any]:

        job = self.training.jobs[trial_name]
        with self.context.lock:
            desc = job.desc
            summary: dict[str, Any] = {
                "TrainingJobName": desc["TrainingJobName"],
                "TrainingJobArn": desc["TrainingJobArn"],
                "TuningJobName": tuning_job.name,
                "CreationTime": desc["CreationTime"],
                "TrainingJobStatus": desc["TrainingJobStatus"],
                "TunedHyperParameters": dict(tuning_job.tuned.get(trial_name, {})),
            }
            for key in ("TrainingStartTime", "TrainingEndTime", "FailureReason"):
                if key in desc:
                    summary[key] = desc[key]
            objective = tuning_job.desc["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
            value = objective_of(job.final_metrics, objective["MetricName"])
            if value is not None:
                summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                    "Type": objective["Type"],
                    "MetricName": objective["MetricName"],
                    "Value": value,
                }
            if desc["TrainingJobStatus"] == "Completed":
                summary["ObjectiveStatus"] = "Succeeded" if value is not None else "Failed"
            elif desc["TrainingJobStatus"] in ("Failed", "Stopped"):
                summary["ObjectiveStatus"] = "Failed"
            else:
                summary["ObjectiveStatus"] = "Pending"
            return summary

    def list_training_jobs_for_hyper_parameter_tuning_job(self, params: dict[str, Any]) -> dict[str, Any]:
        tuning_job = self.get(params["HyperParameterTuningJobName"])
        rows = [self.trial_summary(tuning_job, name) for name in list(tuning_job.trial_names)]
        if params.get("StatusEquals"):
            rows = [row for row in rows if row["TrainingJobStatus"] == params["StatusEquals"]]
        sort_by = params.get("SortBy", "CreationTime")
        if sort_by == "FinalObjectiveMetricValue":
            scored = [row for row in rows if "FinalHyperParameterTuningJobObjectiveMetric" in row]
            unscored = [row for row in rows if "FinalHyperParameterTuningJobObjectiveMetric" not in row]
            scored.sort(
                key=lambda row: row["FinalHyperParameterTuningJobObjectiveMetric"]["Value"],
                reverse=params.get("SortOrder", "Descending") == "Descending",
            )
            rows = scored + unscored
            params = {**params, "SortBy": None}
        page, token = paging.page(
            rows,
            params,
            {"Name": "TrainingJobName", "CreationTime": "CreationTime", "Status": "TrainingJobStatus"},
        )
        return {"TrainingJobSummaries": page, **token}
