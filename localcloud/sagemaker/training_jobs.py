"""Training jobs: CreateTrainingJob, Describe, Stop, List, and the status moves the runner reports.

Each job is kept as the dict DescribeTrainingJob returns (times as epoch seconds, the JSON 1.1 wire
format), guarded by the context's lock. ``TrainingJobRunner`` does the work in its own thread and
reports back through the ``TrainingRegistry`` calls (``training_slot``, ``set_secondary_status``,
``finish_training_job``); every status change is published as an event.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Iterator
from typing import Any

from localcloud.sagemaker import paging
from localcloud.sagemaker.exceptions import AccessDeniedException, ResourceInUse, ValidationException
from localcloud.sagemaker.registry import (
    DEBUGGER_ACCESS_CLOSED,
    DEBUGGER_ACCESS_ENV,
    BackendContext,
    TrainingJob,
)
from localcloud.sagemaker.runners.training import TrainingJobRunner


class TrainingJobs:
    def __init__(self, context: BackendContext) -> None:
        self.context = context
        self.jobs: dict[str, TrainingJob] = {}
        self._slots = threading.Semaphore(context.max_concurrent_jobs)

    def create_training_job(
        self, params: dict[str, Any], tuning_job_arn: str | None = None
    ) -> dict[str, Any]:
        name = params["TrainingJobName"]
        _check_request(params)
        self.context.check_execution_role(params["RoleArn"])
        if self.context.debugger_access == DEBUGGER_ACCESS_CLOSED:
            _refuse_debugger_api(params)
        now = time.time()
        arn = self.context.arn("training-job", name)
        desc = _new_description(params, arn, now, tuning_job_arn)
        job = TrainingJob(name=name, desc=desc)
        job.runner = TrainingJobRunner(self, job)
        with self.context.lock:
            if name in self.jobs:
                raise ResourceInUse(
                    "Training job names must be unique within an AWS account and region, and a training job "
                    f"with this name already exists ({arn})"
                )
            self.jobs[name] = job
            snapshot = self.detail(job)
        self.context.events.remember_tags(arn, params)
        self.context.emit("SageMaker Training Job State Change", arn, snapshot)
        self.context.spawn(job.runner.run, f"train-{name}")
        return {"TrainingJobArn": arn}

    @contextlib.contextmanager
    def training_slot(self, job: TrainingJob) -> Iterator[None]:
        """Hold one of the global job slots (so jobs never oversubscribe the cores); stoppable."""
        while not self._slots.acquire(timeout=0.2):
            if job.stop_requested.is_set():
                yield  # the caller sees the stop and records Stopped
                return
        try:
            yield
        finally:
            self._slots.release()

    def get(self, name: str) -> TrainingJob:
        with self.context.lock:
            job = self.jobs.get(name)
        if job is None:
            # What SageMaker answers for an unknown training job name.
            raise ValidationException("Requested resource not found.")
        return job

    def detail(self, job: TrainingJob) -> dict[str, Any]:
        desc = copy.deepcopy(job.desc)
        if job.final_metrics:
            desc["FinalMetricDataList"] = copy.deepcopy(job.final_metrics)
        return desc

    def set_secondary_status(self, job: TrainingJob, status: str, message: str) -> None:
        with self.context.lock:
            now = time.time()
            transitions = job.desc["SecondaryStatusTransitions"]
            if transitions and "EndTime" not in transitions[-1]:
                transitions[-1]["EndTime"] = now
            transitions.append({"Status": status, "StartTime": now, "StatusMessage": message})
            job.desc["SecondaryStatus"] = status
            job.desc["LastModifiedTime"] = now
            if status == "Downloading":
                job.desc["TrainingStartTime"] = now
            snapshot = self.detail(job)
        self.context.emit("SageMaker Training Job State Change", job.desc["TrainingJobArn"], snapshot)

    def finish_training_job(
        self,
        job: TrainingJob,
        status: str,
        secondary: str | None = None,
        failure_reason: str | None = None,
        model_uri: str | None = None,
        rules: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        with self.context.lock:
            now = time.time()
            secondary = secondary or status
            transitions = job.desc["SecondaryStatusTransitions"]
            if transitions and "EndTime" not in transitions[-1]:
                transitions[-1]["EndTime"] = now
            message = {
                "Completed": "Training job completed",
                "Failed": (failure_reason or "Training job failed")[:1024],
                "Stopped": "Training job stopped",
                "MaxRuntimeExceeded": "Training job stopped: MaxRuntimeInSeconds exceeded",
            }[secondary]
            transitions.append(
                {"Status": secondary, "StartTime": now, "EndTime": now, "StatusMessage": message}
            )
            job.desc.update(
                TrainingJobStatus=status, SecondaryStatus=secondary, LastModifiedTime=now, TrainingEndTime=now
            )
            job.desc.setdefault("TrainingStartTime", now)
            elapsed = max(1, round(now - job.desc["TrainingStartTime"]))
            job.desc.update(TrainingTimeInSeconds=elapsed, BillableTimeInSeconds=elapsed)
            if failure_reason:
                job.desc["FailureReason"] = failure_reason[:1024]
            job.desc["ModelArtifacts"] = (
                {"S3ModelArtifacts": model_uri} if model_uri else {"S3ModelArtifacts": ""}
            )
            if model_uri is None:
                del job.desc["ModelArtifacts"]
            for key in ("DebugRuleEvaluationStatuses", "ProfilerRuleEvaluationStatuses"):
                if key in job.desc:
                    fresh = (rules or {}).get(key)
                    if fresh:
                        job.desc[key] = fresh
                    else:
                        for rule in job.desc[key]:
                            rule.update(
                                RuleEvaluationStatus="Stopped" if status == "Stopped" else "Error",
                                LastModifiedTime=now,
                            )
            snapshot = self.detail(job)
        self.context.emit("SageMaker Training Job State Change", job.desc["TrainingJobArn"], snapshot)
        job.done.set()

    def describe_training_job(self, params: dict[str, Any]) -> dict[str, Any]:
        job = self.get(params["TrainingJobName"])
        with self.context.lock:
            return self.detail(job)

    def stop_training_job(self, params: dict[str, Any]) -> dict[str, Any]:
        job = self.get(params["TrainingJobName"])
        self.stop(job)
        return {}

    def stop(self, job: TrainingJob) -> None:
        with self.context.lock:
            status = job.desc["TrainingJobStatus"]
            if status != "InProgress":
                raise ValidationException(
                    f"The request was rejected because the training job is in status {status}."
                )
            if job.stop_requested.is_set():
                return
            job.stop_requested.set()
            job.desc["TrainingJobStatus"] = "Stopping"
            job.desc["LastModifiedTime"] = time.time()
        self.set_secondary_status(job, "Stopping", "Stopping the training job")
        if job.runner:
            job.runner.stop()

    def list_training_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.context.lock:
            rows: list[dict[str, Any]] = [
                {
                    key: job.desc[key]
                    for key in (
                        "TrainingJobName",
                        "TrainingJobArn",
                        "CreationTime",
                        "TrainingEndTime",
                        "LastModifiedTime",
                        "TrainingJobStatus",
                        "SecondaryStatus",  # TrainingJobSummary carries it (botocore's output shape)
                    )
                    if key in job.desc
                }
                for job in self.jobs.values()
            ]
        rows = paging.filter_rows(rows, params, "TrainingJobName", "TrainingJobStatus")
        page, token = paging.page(
            rows,
            params,
            {"Name": "TrainingJobName", "CreationTime": "CreationTime", "Status": "TrainingJobStatus"},
        )
        return {"TrainingJobSummaries": page, **token}


def _check_request(params: dict[str, Any]) -> None:
    """Refuse what the local emulator cannot run (it runs single-instance script-mode jobs)."""
    if "AlgorithmSpecification" not in params:
        raise ValidationException("AlgorithmSpecification is required by the local emulator (script mode).")
    if "ResourceConfig" not in params:
        raise ValidationException("ResourceConfig is required (InstanceType, InstanceCount, VolumeSizeInGB).")
    resources = params["ResourceConfig"]
    if resources.get("InstanceCount", 1) != 1:
        raise ValidationException(
            "The local emulator runs single-instance training jobs only (InstanceCount must be 1)."
        )
    if params.get("AlgorithmSpecification", {}).get("TrainingInputMode", "File") == "Pipe":
        raise ValidationException(
            "TrainingInputMode Pipe is not supported by the local emulator; use File or FastFile."
        )


# CreateTrainingJob's Debugger fields: "Configure Debugger using SageMaker API"
# (https://docs.aws.amazon.com/sagemaker/latest/dg/debugger-createtrainingjob-api.html) lists them as
# the Debugger API, which is closed to new customers from 2026-07-30 ("Debugger availability change",
# https://docs.aws.amazon.com/sagemaker/latest/dg/debugger-availability-change.html).
DEBUGGER_API_FIELDS = (
    "DebugHookConfig",
    "DebugRuleConfigurations",
    "ProfilerConfig",
    "ProfilerRuleConfigurations",
    "TensorBoardOutputConfig",
)


def _refuse_debugger_api(params: dict[str, Any]) -> None:
    """An account without Debugger access. AWS does not document what such an account is answered;
    the closest documented error is the common AccessDeniedException, and the emulator takes the
    strict side: any Debugger field, even ProfilerConfig {"DisableProfiler": true}, is refused.
    Permanent for the caller (the same request is refused again), though a Lambda retries it."""
    used = [field for field in DEBUGGER_API_FIELDS if params.get(field) is not None]
    if used:
        raise AccessDeniedException(
            "You do not have sufficient access to perform this action: this account has no access to "
            f"Amazon SageMaker Debugger ({', '.join(used)}). Local emulator: {DEBUGGER_ACCESS_ENV}=open "
            "plays an account that has it."
        )


def described_output_config(config: dict[str, Any]) -> dict[str, Any]:
    """OutputDataConfig as SageMaker describes it: ``KmsKeyId`` always present, an empty string when the
    request named none. The SageMaker Python SDK indexes it unconditionally when it attaches to a job
    (sagemaker/estimator.py ``_prepare_init_params_from_job_description``:
    ``job_details["OutputDataConfig"]["KmsKeyId"]``), so AWS's answer always carries it.
    """
    return {"KmsKeyId": "", **config}


def _new_description(
    params: dict[str, Any], arn: str, now: float, tuning_job_arn: str | None
) -> dict[str, Any]:
    """DescribeTrainingJob's answer for a job that has just been created."""
    name = params["TrainingJobName"]
    desc: dict[str, Any] = {
        "TrainingJobName": name,
        "TrainingJobArn": arn,
        "HyperParameters": dict(params.get("HyperParameters") or {}),
        "AlgorithmSpecification": params["AlgorithmSpecification"],
        "RoleArn": params["RoleArn"],
        "InputDataConfig": params.get("InputDataConfig") or [],
        "OutputDataConfig": described_output_config(params["OutputDataConfig"]),
        "ResourceConfig": params["ResourceConfig"],
        # SageMaker's default cap when none is given: one day.
        "StoppingCondition": params.get("StoppingCondition") or {"MaxRuntimeInSeconds": 86400},
        "CreationTime": now,
        "LastModifiedTime": now,
        "TrainingJobStatus": "InProgress",
        "SecondaryStatus": "Starting",
        "SecondaryStatusTransitions": [
            {
                "Status": "Starting",
                "StartTime": now,
                "StatusMessage": "Preparing the instances for training",
            }
        ],
        "EnableNetworkIsolation": params.get("EnableNetworkIsolation", False),
        "EnableInterContainerTrafficEncryption": params.get("EnableInterContainerTrafficEncryption", False),
        "EnableManagedSpotTraining": params.get("EnableManagedSpotTraining", False),
    }
    if tuning_job_arn:
        desc["TuningJobArn"] = tuning_job_arn
    for optional in ("Environment", "DebugHookConfig", "ProfilerConfig", "VpcConfig", "CheckpointConfig"):
        if params.get(optional) is not None:
            desc[optional] = params[optional]
    for config_key, status_key in (
        ("DebugRuleConfigurations", "DebugRuleEvaluationStatuses"),
        ("ProfilerRuleConfigurations", "ProfilerRuleEvaluationStatuses"),
    ):
        if params.get(config_key):
            desc[config_key] = params[config_key]
            desc[status_key] = [
                {
                    "RuleConfigurationName": rule["RuleConfigurationName"],
                    "RuleEvaluationStatus": "InProgress",
                    "LastModifiedTime": now,
                }
                for rule in params[config_key]
            ]
    if params.get("ProfilerConfig"):
        desc["ProfilingStatus"] = "Disabled" if params["ProfilerConfig"].get("DisableProfiler") else "Enabled"
    return desc
