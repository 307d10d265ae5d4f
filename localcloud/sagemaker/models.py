"""The emulator's backend: training jobs, tuning jobs, models, endpoint configs and endpoints.

Every resource is kept as the dict its Describe call returns (times as epoch seconds, the JSON 1.1
wire format), guarded by one lock. Long work (a job, a tuning search, an endpoint start) runs in its
own thread and moves the resource through the same statuses SageMaker uses; every status change is
published as an EventBridge-shaped event ("source": "aws.sagemaker", detail = the Describe shape).
State lives in memory (and job files under ``state_dir``): a restarted emulator starts empty.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import queue
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from localcloud.containerenv import base_python
from localcloud.sagemaker.endpoints import ModelServerProcess, ModelServerStartError
from localcloud.sagemaker.exceptions import (
    ModelError,
    ResourceInUse,
    ResourceLimitExceeded,
    ResourceNotFound,
    RuntimeValidationError,
    ValidationException,
)
from localcloud.sagemaker.training import TrainingJobRunner, parse_s3_uri

logger = logging.getLogger("localcloud.sagemaker")

ACCOUNT_ID = "123456789012"
REPO_ROOT = Path(__file__).resolve().parents[2]
TERMINAL_TRAINING = {"Completed", "Failed", "Stopped"}
EventCallback = Callable[[dict[str, Any]], None]
LogCallback = Callable[[str, str], None]


@dataclass
class TrainingJob:
    name: str
    desc: dict[str, Any]
    stop_requested: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    final_metrics: list[dict[str, Any]] = field(default_factory=list)
    runner: TrainingJobRunner | None = None


@dataclass
class TuningJob:
    name: str
    desc: dict[str, Any]
    trial_names: list[str] = field(default_factory=list)
    tuned: dict[str, dict[str, str]] = field(default_factory=dict)  # trial name -> tuned values
    stop_requested: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class Endpoint:
    name: str
    desc: dict[str, Any]
    server: ModelServerProcess | None = None
    generation: int = 0


class SageMakerBackend:
    def __init__(
        self,
        state_dir: Path,
        region: str = "us-east-1",
        s3_endpoint_url: str | None = None,
        training_python: Path | None = None,
        on_event: EventCallback | None = None,
        on_log: LogCallback | None = None,
        max_concurrent_jobs: int | None = None,
        endpoint_start_timeout: float = 180.0,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.region = region
        s3_url = s3_endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3")
        if not s3_url:
            # Never fall back to real AWS.
            raise ValueError(
                "s3_endpoint_url (or AWS_ENDPOINT_URL_S3) is required: the emulator only talks to local S3"
            )
        self.s3_endpoint_url = s3_url
        self.training_python = Path(training_python or base_python())
        self.on_event = on_event
        self.on_log = on_log
        cap = max_concurrent_jobs or int(os.environ.get("LOCALCLOUD_MAX_TRAINING_JOBS", "2"))
        self.max_concurrent_jobs = max(1, cap)
        self.threads_per_job = max(1, (os.cpu_count() or 1) // self.max_concurrent_jobs)
        self.endpoint_start_timeout = endpoint_start_timeout
        self.max_parallel_training_jobs_limit = int(
            os.environ.get("LOCALCLOUD_MAX_PARALLEL_TRAINING_JOBS", "10")
        )
        self.s3_errors: tuple[type[BaseException], ...] = (
            botocore.exceptions.BotoCoreError,
            botocore.exceptions.ClientError,
        )

        self._lock = threading.RLock()
        self._slots = threading.Semaphore(self.max_concurrent_jobs)
        self.training_jobs: dict[str, TrainingJob] = {}
        self.tuning_jobs: dict[str, TuningJob] = {}
        self.models: dict[str, dict[str, Any]] = {}
        self.endpoint_configs: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self._threads: list[threading.Thread] = []
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._event_thread = threading.Thread(
            target=self._dispatch_events, name="sagemaker-events", daemon=True
        )
        self._event_thread.start()
        self._s3_local = threading.local()
        self._tags: dict[str, dict[str, str]] = {}  # resource ARN -> tags given at creation

    # == helpers ====================================================================================

    def arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{ACCOUNT_ID}:{kind}/{name.lower()}"

    def s3_client(self) -> Any:
        client = getattr(self._s3_local, "client", None)
        if client is None:
            client = boto3.client(
                "s3",
                endpoint_url=self.s3_endpoint_url,
                region_name=self.region,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                config=Config(retries={"max_attempts": 3}),
            )
            self._s3_local.client = client
        return client

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _remember_tags(self, arn: str, params: dict[str, Any]) -> None:
        with self._lock:
            self._tags[arn] = {tag["Key"]: tag.get("Value", "") for tag in params.get("Tags") or []}

    def job_log_line(self, job_name: str, line: str) -> None:
        logger.debug("[%s] %s", job_name, line)
        if self.on_log:
            try:
                self.on_log(job_name, line)
            except Exception:
                logger.exception("on_log callback failed")

    # -- events ---------------------------------------------------------------------------------------

    def emit(self, detail_type: str, resource_arn: str, detail: dict[str, Any]) -> None:
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": "aws.sagemaker",
            "account": ACCOUNT_ID,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [resource_arn],
            # AWS's state-change events carry the resource's tags as a map next to the Describe fields.
            "detail": _times_to_millis(
                {**copy.deepcopy(detail), "Tags": dict(self._tags.get(resource_arn, {}))}
            ),
        }
        if "EndpointStatus" in event["detail"]:
            # Endpoint events spell the status IN_SERVICE, UPDATING, ... (AWS's documented example),
            # where DescribeEndpoint says InService, Updating.
            event["detail"]["EndpointStatus"] = _event_status(event["detail"]["EndpointStatus"])
        self._events.put(event)

    def _dispatch_events(self) -> None:
        # One thread, so subscribers see each resource's events in the order they happened.
        while True:
            event = self._events.get()
            try:
                if event is None:
                    return
                if self.on_event:
                    self.on_event(event)
            except Exception:
                logger.exception("on_event callback failed for %s", event and event.get("detail-type"))
            finally:
                self._events.task_done()

    def wait_for_events(self) -> None:
        """Block until every event emitted so far has been handed to on_event."""
        self._events.join()

    # == training jobs ===============================================================================

    def create_training_job(
        self, params: dict[str, Any], tuning_job_arn: str | None = None
    ) -> dict[str, Any]:
        name = params["TrainingJobName"]
        if "AlgorithmSpecification" not in params:
            raise ValidationException(
                "AlgorithmSpecification is required by the local emulator (script mode)."
            )
        if "ResourceConfig" not in params:
            raise ValidationException(
                "ResourceConfig is required (InstanceType, InstanceCount, VolumeSizeInGB)."
            )
        resources = params["ResourceConfig"]
        if resources.get("InstanceCount", 1) != 1:
            raise ValidationException(
                "The local emulator runs single-instance training jobs only (InstanceCount must be 1)."
            )
        if params.get("AlgorithmSpecification", {}).get("TrainingInputMode", "File") == "Pipe":
            raise ValidationException(
                "TrainingInputMode Pipe is not supported by the local emulator; use File or FastFile."
            )
        now = time.time()
        arn = self.arn("training-job", name)
        desc: dict[str, Any] = {
            "TrainingJobName": name,
            "TrainingJobArn": arn,
            "HyperParameters": dict(params.get("HyperParameters") or {}),
            "AlgorithmSpecification": params["AlgorithmSpecification"],
            "RoleArn": params["RoleArn"],
            "InputDataConfig": params.get("InputDataConfig") or [],
            "OutputDataConfig": params["OutputDataConfig"],
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
            "EnableInterContainerTrafficEncryption": params.get(
                "EnableInterContainerTrafficEncryption", False
            ),
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
            desc["ProfilingStatus"] = (
                "Disabled" if params["ProfilerConfig"].get("DisableProfiler") else "Enabled"
            )
        job = TrainingJob(name=name, desc=desc)
        job.runner = TrainingJobRunner(self, job)
        with self._lock:
            if name in self.training_jobs:
                raise ResourceInUse(
                    "Training job names must be unique within an AWS account and region, and a training job "
                    f"with this name already exists ({arn})"
                )
            self.training_jobs[name] = job
            snapshot = self._training_detail(job)
        self._remember_tags(arn, params)
        self.emit("SageMaker Training Job State Change", arn, snapshot)
        self._spawn(job.runner.run, f"train-{name}")
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

    def _get_training_job(self, name: str) -> TrainingJob:
        with self._lock:
            job = self.training_jobs.get(name)
        if job is None:
            # What SageMaker answers for an unknown training job name.
            raise ValidationException("Requested resource not found.")
        return job

    def _training_detail(self, job: TrainingJob) -> dict[str, Any]:
        desc = copy.deepcopy(job.desc)
        if job.final_metrics:
            desc["FinalMetricDataList"] = copy.deepcopy(job.final_metrics)
        return desc

    def set_secondary_status(self, job: TrainingJob, status: str, message: str) -> None:
        with self._lock:
            now = time.time()
            transitions = job.desc["SecondaryStatusTransitions"]
            if transitions and "EndTime" not in transitions[-1]:
                transitions[-1]["EndTime"] = now
            transitions.append({"Status": status, "StartTime": now, "StatusMessage": message})
            job.desc["SecondaryStatus"] = status
            job.desc["LastModifiedTime"] = now
            if status == "Downloading":
                job.desc["TrainingStartTime"] = now
            snapshot = self._training_detail(job)
        self.emit("SageMaker Training Job State Change", job.desc["TrainingJobArn"], snapshot)

    def finish_training_job(
        self,
        job: TrainingJob,
        status: str,
        secondary: str | None = None,
        failure_reason: str | None = None,
        model_uri: str | None = None,
        rules: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        with self._lock:
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
            snapshot = self._training_detail(job)
        self.emit("SageMaker Training Job State Change", job.desc["TrainingJobArn"], snapshot)
        job.done.set()

    def describe_training_job(self, params: dict[str, Any]) -> dict[str, Any]:
        job = self._get_training_job(params["TrainingJobName"])
        with self._lock:
            return self._training_detail(job)

    def stop_training_job(self, params: dict[str, Any]) -> dict[str, Any]:
        job = self._get_training_job(params["TrainingJobName"])
        self._stop_training_job(job)
        return {}

    def _stop_training_job(self, job: TrainingJob) -> None:
        with self._lock:
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
        with self._lock:
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
                    )
                    if key in job.desc
                }
                for job in self.training_jobs.values()
            ]
        rows = _filter_rows(rows, params, "TrainingJobName", "TrainingJobStatus")
        page, token = _page(
            rows,
            params,
            {"Name": "TrainingJobName", "CreationTime": "CreationTime", "Status": "TrainingJobStatus"},
        )
        return {"TrainingJobSummaries": page, **token}

    # == tuning jobs =================================================================================

    def create_hyper_parameter_tuning_job(self, params: dict[str, Any]) -> dict[str, Any]:
        from localcloud.sagemaker.tuning import TuningJobRunner, validate_tuning_config

        name = params["HyperParameterTuningJobName"]
        config = params["HyperParameterTuningJobConfig"]
        definition = params.get("TrainingJobDefinition")
        if definition is None:
            raise ValidationException(
                "TrainingJobDefinition is required (several TrainingJobDefinitions: not supported locally)."
            )
        validate_tuning_config(config, definition)
        limits = config["ResourceLimits"]
        if limits["MaxParallelTrainingJobs"] > self.max_parallel_training_jobs_limit:
            raise ResourceLimitExceeded(
                f"The value {limits['MaxParallelTrainingJobs']} for MaxParallelTrainingJobs exceeds "
                "the account limit "
                f"of {self.max_parallel_training_jobs_limit} (LOCALCLOUD_MAX_PARALLEL_TRAINING_JOBS)."
            )
        now = time.time()
        arn = self.arn("hyper-parameter-tuning-job", name)
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
        with self._lock:
            if name in self.tuning_jobs:
                raise ResourceInUse(f"Hyperparameter tuning job {name} already exists ({arn}).")
            self.tuning_jobs[name] = tuning_job
            snapshot = copy.deepcopy(desc)
        self._remember_tags(arn, params)
        self.emit("SageMaker HyperParameter Tuning Job State Change", arn, snapshot)
        runner = TuningJobRunner(self, tuning_job)
        self._spawn(runner.run, f"tune-{name}")
        return {"HyperParameterTuningJobArn": arn}

    def _get_tuning_job(self, name: str) -> TuningJob:
        with self._lock:
            tuning_job = self.tuning_jobs.get(name)
        if tuning_job is None:
            raise ResourceNotFound(f"Amazon SageMaker can't find a tuning job with name {name}")
        return tuning_job

    def update_tuning_job(self, tuning_job: TuningJob, emit: bool, **fields: Any) -> None:
        with self._lock:
            tuning_job.desc.update(fields)
            tuning_job.desc["LastModifiedTime"] = time.time()
            snapshot = copy.deepcopy(tuning_job.desc)
        if emit:
            self.emit(
                "SageMaker HyperParameter Tuning Job State Change",
                tuning_job.desc["HyperParameterTuningJobArn"],
                snapshot,
            )

    def describe_hyper_parameter_tuning_job(self, params: dict[str, Any]) -> dict[str, Any]:
        tuning_job = self._get_tuning_job(params["HyperParameterTuningJobName"])
        with self._lock:
            return copy.deepcopy(tuning_job.desc)

    def stop_hyper_parameter_tuning_job(self, params: dict[str, Any]) -> dict[str, Any]:
        tuning_job = self._get_tuning_job(params["HyperParameterTuningJobName"])
        with self._lock:
            status = tuning_job.desc["HyperParameterTuningJobStatus"]
            if status != "InProgress":
                raise ValidationException(
                    f"The request was rejected because the tuning job is in status {status}."
                )
        tuning_job.stop_requested.set()
        self.update_tuning_job(tuning_job, emit=True, HyperParameterTuningJobStatus="Stopping")
        for trial in list(tuning_job.trial_names):
            job = self.training_jobs[trial]
            with contextlib.suppress(ValidationException):  # already finished
                self._stop_training_job(job)
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
        with self._lock:
            rows = []
            for tuning_job in self.tuning_jobs.values():
                row = {key: copy.deepcopy(tuning_job.desc[key]) for key in keys if key in tuning_job.desc}
                config = tuning_job.desc["HyperParameterTuningJobConfig"]
                row["Strategy"] = config["Strategy"]
                row["ResourceLimits"] = copy.deepcopy(config["ResourceLimits"])
                rows.append(row)
        rows = _filter_rows(rows, params, "HyperParameterTuningJobName", "HyperParameterTuningJobStatus")
        page, token = _page(
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
        from localcloud.sagemaker.tuning import objective_of

        job = self.training_jobs[trial_name]
        with self._lock:
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
        tuning_job = self._get_tuning_job(params["HyperParameterTuningJobName"])
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
        page, token = _page(
            rows,
            params,
            {"Name": "TrainingJobName", "CreationTime": "CreationTime", "Status": "TrainingJobStatus"},
        )
        return {"TrainingJobSummaries": page, **token}

    # == models, endpoint configs ======================================================================

    def create_model(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["ModelName"]
        container = params.get("PrimaryContainer") or (params.get("Containers") or [None])[0]
        if not container:
            raise ValidationException("Either PrimaryContainer or Containers must be specified.")
        if not container.get("ModelDataUrl"):
            raise ValidationException(
                "The local emulator needs PrimaryContainer.ModelDataUrl (an S3 model.tar.gz)."
            )
        arn = self.arn("model", name)
        desc = {
            "ModelName": name,
            "ModelArn": arn,
            "PrimaryContainer": container,
            "ExecutionRoleArn": params.get("ExecutionRoleArn", ""),
            "CreationTime": time.time(),
            "EnableNetworkIsolation": params.get("EnableNetworkIsolation", False),
        }
        with self._lock:
            if name in self.models:
                raise ValidationException(f'Cannot create already existing model "{arn}".')
            self.models[name] = desc
        return {"ModelArn": arn}

    def describe_model(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            desc = self.models.get(params["ModelName"])
            if desc is None:
                raise ValidationException(f'Could not find model "{self.arn("model", params["ModelName"])}".')
            return copy.deepcopy(desc)

    def list_models(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            rows = [
                {key: desc[key] for key in ("ModelName", "ModelArn", "CreationTime")}
                for desc in self.models.values()
            ]
        rows = _filter_rows(rows, params, "ModelName", "")
        page, token = _page(rows, params, {"Name": "ModelName", "CreationTime": "CreationTime"})
        return {"Models": page, **token}

    def list_endpoint_configs(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            rows = [
                {key: desc[key] for key in ("EndpointConfigName", "EndpointConfigArn", "CreationTime")}
                for desc in self.endpoint_configs.values()
            ]
        rows = _filter_rows(rows, params, "EndpointConfigName", "")
        page, token = _page(rows, params, {"Name": "EndpointConfigName", "CreationTime": "CreationTime"})
        return {"EndpointConfigs": page, **token}

    def delete_model(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if self.models.pop(params["ModelName"], None) is None:
                raise ValidationException(f'Could not find model "{self.arn("model", params["ModelName"])}".')
        return {}

    def create_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointConfigName"]
        variants = params["ProductionVariants"]
        if len(variants) != 1:
            raise ValidationException(
                "The local emulator serves exactly one production variant per endpoint config."
            )
        with self._lock:
            for variant in variants:
                if variant["ModelName"] not in self.models:
                    raise ValidationException(
                        f'Could not find model "{self.arn("model", variant["ModelName"])}".'
                    )
                if not variant.get("ServerlessConfig") and not variant.get("InstanceType"):
                    raise ValidationException(
                        "Each production variant needs InstanceType or ServerlessConfig."
                    )
            arn = self.arn("endpoint-config", name)
            if name in self.endpoint_configs:
                raise ValidationException(f'Cannot create already existing endpoint configuration "{arn}".')
            self.endpoint_configs[name] = {
                "EndpointConfigName": name,
                "EndpointConfigArn": arn,
                "ProductionVariants": variants,
                "CreationTime": time.time(),
            }
        return {"EndpointConfigArn": arn}

    def describe_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._get_endpoint_config(params["EndpointConfigName"]))

    def _get_endpoint_config(self, name: str) -> dict[str, Any]:
        config = self.endpoint_configs.get(name)
        if config is None:
            raise ValidationException(
                f'Could not find endpoint configuration "{self.arn("endpoint-config", name)}".'
            )
        return config

    def delete_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._get_endpoint_config(params["EndpointConfigName"])
            del self.endpoint_configs[params["EndpointConfigName"]]
        return {}

    # == endpoints ===================================================================================

    def create_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        arn = self.arn("endpoint", name)
        now = time.time()
        with self._lock:
            config = self._get_endpoint_config(params["EndpointConfigName"])
            if name in self.endpoints:
                raise ValidationException(f'Cannot create already existing endpoint "{arn}".')
            endpoint = Endpoint(
                name=name,
                desc={
                    "EndpointName": name,
                    "EndpointArn": arn,
                    "EndpointConfigName": config["EndpointConfigName"],
                    "EndpointStatus": "Creating",
                    "CreationTime": now,
                    "LastModifiedTime": now,
                },
            )
            self.endpoints[name] = endpoint
            snapshot = self._endpoint_detail(endpoint)
        self._remember_tags(arn, params)
        self.emit("SageMaker Endpoint State Change", arn, snapshot)
        self._spawn(lambda: self._deploy(endpoint, config, updating=False), f"deploy-{name}")
        return {"EndpointArn": arn}

    def update_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        with self._lock:
            endpoint = self._get_endpoint(name)
            config = self._get_endpoint_config(params["EndpointConfigName"])
            status = endpoint.desc["EndpointStatus"]
            if status != "InService":
                raise ValidationException(
                    f'Cannot update in-progress endpoint "{endpoint.desc["EndpointArn"]}".'
                )
            endpoint.desc.update(EndpointStatus="Updating", LastModifiedTime=time.time())
            endpoint.desc.pop("FailureReason", None)
            snapshot = self._endpoint_detail(endpoint)
        self.emit("SageMaker Endpoint State Change", endpoint.desc["EndpointArn"], snapshot)
        self._spawn(lambda: self._deploy(endpoint, config, updating=True), f"update-{name}")
        return {"EndpointArn": endpoint.desc["EndpointArn"]}

    def _get_endpoint(self, name: str) -> Endpoint:
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            raise ValidationException(f'Could not find endpoint "{self.arn("endpoint", name)}".')
        return endpoint

    def _endpoint_detail(self, endpoint: Endpoint) -> dict[str, Any]:
        desc = copy.deepcopy(endpoint.desc)
        config = self.endpoint_configs.get(desc["EndpointConfigName"])
        if config and desc["EndpointStatus"] != "Creating":
            desc["ProductionVariants"] = [
                _variant_summary(variant, desc["LastModifiedTime"])
                for variant in config["ProductionVariants"]
            ]
        return desc

    def _deploy(self, endpoint: Endpoint, config: dict[str, Any], updating: bool) -> None:
        """Start a server for `config`; on success switch to it, then drain and stop the old one."""
        with self._lock:
            endpoint.generation += 1
            generation = endpoint.generation
        variant = config["ProductionVariants"][0]
        work_dir = self.state_dir / "endpoints" / endpoint.name / f"gen-{generation}"
        server: ModelServerProcess | None = None
        try:
            with self._lock:
                model = copy.deepcopy(self.models.get(variant["ModelName"]))
            if model is None:
                raise ModelServerStartError(f"model {variant['ModelName']} was deleted")
            model_dir = self._fetch_model(model, work_dir)
            environment = dict(model["PrimaryContainer"].get("Environment") or {})
            environment["SAGEMAKER_ENDPOINT_NAME"] = endpoint.name
            # Serving runs in the base env (the inference image), never a training overlay.
            server = ModelServerProcess(endpoint.name, model_dir, environment, work_dir / "server.log")
            server.start()
            server.wait_ready(self.endpoint_start_timeout)
        except (
            ModelServerStartError,
            botocore.exceptions.BotoCoreError,
            botocore.exceptions.ClientError,
            tarfile.TarError,
            OSError,
        ) as error:
            if server:
                server.stop()
            reason = f"{type(error).__name__}: {error}"[:1024]
            logger.warning("endpoint %s: deploy failed: %s", endpoint.name, reason)
            with self._lock:
                if updating:
                    # SageMaker rolls a failed update back: the old config keeps serving.
                    endpoint.desc.update(
                        EndpointStatus="InService",
                        FailureReason=f"Update failed, rolled back: {reason}"[:1024],
                    )
                else:
                    endpoint.desc.update(EndpointStatus="Failed", FailureReason=reason)
                endpoint.desc["LastModifiedTime"] = time.time()
                snapshot = self._endpoint_detail(endpoint)
            self.emit("SageMaker Endpoint State Change", endpoint.desc["EndpointArn"], snapshot)
            return
        old: ModelServerProcess | None
        with self._lock:
            if self.endpoints.get(endpoint.name) is not endpoint:  # deleted while starting
                old = server
            else:
                old = endpoint.server
                endpoint.server = server
                endpoint.desc.update(
                    EndpointStatus="InService",
                    EndpointConfigName=config["EndpointConfigName"],
                    LastModifiedTime=time.time(),
                )
            snapshot = self._endpoint_detail(endpoint)
        if old is not None:
            old.drain_and_stop()
        if old is not server:
            self.emit("SageMaker Endpoint State Change", endpoint.desc["EndpointArn"], snapshot)

    def _fetch_model(self, model: dict[str, Any], work_dir: Path) -> Path:
        model_dir = work_dir / "model"
        model_dir.mkdir(parents=True, exist_ok=True)
        container = model["PrimaryContainer"]
        bucket, key = parse_s3_uri(container["ModelDataUrl"])
        archive = work_dir / "model.tar.gz"
        self.s3_client().download_file(bucket, key, str(archive))
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(model_dir, filter="data")
        submit = (container.get("Environment") or {}).get("SAGEMAKER_SUBMIT_DIRECTORY", "")
        if submit.startswith("s3://"):
            # Inference code shipped separately (SDK's non-repacked form): unpack it into code/.
            source_archive = work_dir / "sourcedir.tar.gz"
            source_bucket, source_key = parse_s3_uri(submit)
            self.s3_client().download_file(source_bucket, source_key, str(source_archive))
            with tarfile.open(source_archive, "r:gz") as tar:
                tar.extractall(model_dir / "code", filter="data")
        return model_dir

    def describe_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            return self._endpoint_detail(self._get_endpoint(params["EndpointName"]))

    def delete_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            endpoint = self._get_endpoint(params["EndpointName"])
            endpoint.desc.update(EndpointStatus="Deleting", LastModifiedTime=time.time())
            snapshot = self._endpoint_detail(endpoint)
            del self.endpoints[endpoint.name]
            server, endpoint.server = endpoint.server, None
        self.emit("SageMaker Endpoint State Change", endpoint.desc["EndpointArn"], snapshot)
        if server:
            self._spawn(server.drain_and_stop, f"delete-{endpoint.name}")
        return {}

    def list_endpoints(self, params: dict[str, Any]) -> dict[str, Any]:
        keys = ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus")
        with self._lock:
            rows = [{key: endpoint.desc[key] for key in keys} for endpoint in self.endpoints.values()]
        rows = _filter_rows(rows, params, "EndpointName", "EndpointStatus")
        page, token = _page(
            rows, params, {"Name": "EndpointName", "CreationTime": "CreationTime", "Status": "EndpointStatus"}
        )
        return {"Endpoints": page, **token}

    # -- runtime --------------------------------------------------------------------------------------

    def invoke_endpoint(
        self, name: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            endpoint = self.endpoints.get(name)
            server = endpoint.server if endpoint else None
            if endpoint is None or server is None:
                raise RuntimeValidationError(f"Endpoint {name} of account {ACCOUNT_ID} not found.")
            server.acquire()  # under the lock: an update cannot stop this server before we release
        try:
            status, response_headers, payload = server.request("POST", "/invocations", body, headers)
        except OSError as error:
            raise ModelError(
                f'Received server error (500) from primary with message "{error}".',
                500,
                str(error),
                self._log_stream(name),
            ) from error
        finally:
            server.release()
        if status >= 400:
            text = payload.decode("utf-8", errors="replace")
            kind = "client" if status < 500 else "server"
            raise ModelError(
                f'Received {kind} error ({status}) from primary with message "{text}". See '
                f"https://{self.region}.console.aws.amazon.com/cloudwatch/home?region={self.region}#logEventViewer:"
                f"group=/aws/sagemaker/Endpoints/{name} in account {ACCOUNT_ID} for more information.",
                status,
                text,
                self._log_stream(name),
            )
        variant = "AllTraffic"
        with self._lock:
            if endpoint.desc["EndpointConfigName"] in self.endpoint_configs:
                variant = self.endpoint_configs[endpoint.desc["EndpointConfigName"]]["ProductionVariants"][0][
                    "VariantName"
                ]
        return (
            status,
            {
                "Content-Type": response_headers.get("content-type", "application/json"),
                "x-Amzn-Invoked-Production-Variant": variant,
            },
            payload,
        )

    def _log_stream(self, name: str) -> str:
        return f"arn:aws:logs:{self.region}:{ACCOUNT_ID}:log-group:/aws/sagemaker/Endpoints/{name}"

    # == shutdown ====================================================================================

    def shutdown(self) -> None:
        """Stop every job and endpoint process (jobs end Stopped), then the event thread."""
        with self._lock:
            jobs = [job for job in self.training_jobs.values() if not job.done.is_set()]
            tunings = list(self.tuning_jobs.values())
            servers = [endpoint.server for endpoint in self.endpoints.values() if endpoint.server]
        for tuning_job in tunings:
            tuning_job.stop_requested.set()
        for job in jobs:
            job.stop_requested.set()
            if job.runner:
                job.runner.stop()
        for server in servers:
            server.stop()
        for thread in list(self._threads):
            thread.join(timeout=30)
        self._events.put(None)
        self._event_thread.join(timeout=10)


def _event_status(status: str) -> str:
    """InService -> IN_SERVICE, UpdateRollbackFailed -> UPDATE_ROLLBACK_FAILED."""
    return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(status)).upper()


def _variant_summary(variant: dict[str, Any], when: float) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "VariantName": variant["VariantName"],
        "DeployedImages": [
            {
                "SpecifiedImage": "localcloud-modelserver",
                "ResolvedImage": "localcloud-modelserver",
                "ResolutionTime": when,
            }
        ],
        "CurrentWeight": float(variant.get("InitialVariantWeight", 1.0)),
        "DesiredWeight": float(variant.get("InitialVariantWeight", 1.0)),
    }
    if variant.get("ServerlessConfig"):
        summary["CurrentServerlessConfig"] = variant["ServerlessConfig"]
        summary["DesiredServerlessConfig"] = variant["ServerlessConfig"]
    else:
        summary["CurrentInstanceCount"] = variant.get("InitialInstanceCount", 1)
        summary["DesiredInstanceCount"] = variant.get("InitialInstanceCount", 1)
    return summary


def _filter_rows(
    rows: list[dict[str, Any]], params: dict[str, Any], name_key: str, status_key: str
) -> list[dict[str, Any]]:
    if params.get("NameContains"):
        rows = [row for row in rows if params["NameContains"].lower() in row[name_key].lower()]
    if params.get("StatusEquals"):
        rows = [row for row in rows if row[status_key] == params["StatusEquals"]]
    for key, compare in (
        ("CreationTimeAfter", lambda row, t: row["CreationTime"] > t),
        ("CreationTimeBefore", lambda row, t: row["CreationTime"] < t),
        ("LastModifiedTimeAfter", lambda row, t: row.get("LastModifiedTime", 0) > t),
        ("LastModifiedTimeBefore", lambda row, t: row.get("LastModifiedTime", 0) < t),
    ):
        if params.get(key) is not None:
            moment = float(params[key])
            rows = [row for row in rows if compare(row, moment)]
    return rows


def _page(
    rows: list[dict[str, Any]],
    params: dict[str, Any],
    sort_keys: dict[str, str],
    default_sort: str = "CreationTime",
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    sort_by = params.get("SortBy", default_sort)
    if sort_by:
        key = sort_keys.get(sort_by)
        if key is None:
            raise ValidationException(
                f"Value '{sort_by}' at 'sortBy' failed to satisfy constraint: "
                f"Member must be one of {sorted(sort_keys)}"
            )
        rows = sorted(
            rows,
            key=lambda row: row.get(key) or 0,
            reverse=params.get("SortOrder", "Descending") == "Descending",
        )
    try:
        start = int(params.get("NextToken") or 0)
    except ValueError as error:
        raise ValidationException("Invalid pagination token.") from error
    size = int(params.get("MaxResults") or 100)
    page = rows[start : start + size]
    token = {"NextToken": str(start + size)} if start + size < len(rows) else {}
    return copy.deepcopy(page), token


def _times_to_millis(value: Any, key: str = "") -> Any:
    """Events carry times as epoch milliseconds (as AWS's examples show), Describe as seconds."""
    if isinstance(value, dict):
        return {k: _times_to_millis(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_times_to_millis(item, key) for item in value]
    if (
        isinstance(value, float | int)
        and not isinstance(value, bool)
        and (key.endswith("Time") or key == "Timestamp")
    ):
        return int(value * 1000)
    return value
