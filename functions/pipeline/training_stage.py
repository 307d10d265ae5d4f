"""On a finished tuning job: start the profiled training job (train_model.py) with the best trial.

When the trials trained the head from the features channel (pipeline.features_stage), the profiled job gets
that channel too, next to the image channels the dataset's manifest.json gives (found from the trials'
train channel, else their static hyperparameter dataset_manifest): it trains the head from the
features and runs the full model on the images only where the Debugger hook needs activations.
The manifest's image counts and the best trial's batch size and epochs are checked against
dogclf.debugger.hook_config (the sizes every in-script rule needs) in either mode. DebuggerMode
decides the rest of the request:

- in-script (default): none of the Debugger API's fields (DebugHookConfig, DebugRuleConfigurations,
  ProfilerConfig, ProfilerRuleConfigurations, TensorBoardOutputConfig), so the request needs nothing
  of the Debugger service, which is closed to new customers from 2026-07-30 (AWS, "Debugger
  availability change": https://docs.aws.amazon.com/sagemaker/latest/dg/debugger-availability-change.html).
  train_model.py's hook (dogclf/debugger/hook.py) writes the same hook config itself when the job has
  none, sized from the same dataset;
- builtin: the DebugHookConfig, AWS's rule containers for the same rules plus ProfilerReport, and the
  service profiler, for accounts that still have Debugger.

Errors: a missing or invalid manifest, or hyperparameters the hook config cannot use, are permanent
(recorded in the result and the notification, nothing started); S3 and SageMaker errors propagate
(transient: Lambda retries the event).
"""

from __future__ import annotations

import json
from typing import Any, Literal, Required, TypedDict

from botocore.exceptions import ClientError

from dogclf import contract
from dogclf.contract import training_job_name
from dogclf.debugger.hook_config import debug_hook_config
from pipeline.adapters.aws import error_code
from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import ObjectTooLargeError, S3Location, S3Store
from pipeline.adapters.sagemaker import SageMakerJobs
from pipeline.image_uris import debugger_rule_image_uri
from pipeline.job_requests import (
    CHANNELS,
    DATASET_MANIFEST_HYPERPARAMETER,
    resource_config,
    s3_channel,
    stopping_condition,
    training_image,
)
from pipeline.powertools import logger
from pipeline.settings import ProfiledJobSettings
from pipeline.source_dir import PROFILED, ensure_uploaded

MANIFEST_FILE = "manifest.json"  # written by ingest next to the dataset's split folders
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # a manifest lists class names: a few kB even for 133 classes
TRAIN_CHANNEL, VALID_CHANNEL = "train", "valid"


class TrainingRequestError(ValueError):
    """The profiled job cannot be built from what the tuning job and the dataset give (permanent)."""


def manifest_from_channels(input_data_config: list[dict[str, Any]]) -> S3Location:
    """manifest.json of the dataset whose image channels a job reads: its train channel is
    s3://<bucket>/<dataset prefix>/train/, the manifest is s3://<bucket>/<dataset prefix>/manifest.json."""
    channels = {
        channel["ChannelName"]: channel["DataSource"]["S3DataSource"]["S3Uri"]
        for channel in input_data_config
        if "S3DataSource" in channel.get("DataSource", {})
    }
    if TRAIN_CHANNEL not in channels:
        raise TrainingRequestError(f"the job has no S3 {TRAIN_CHANNEL!r} channel")
    try:
        train = S3Location.parse(channels[TRAIN_CHANNEL])
    except ValueError as error:
        raise TrainingRequestError(f"train channel: {error}") from error
    dataset_prefix, _, split = train.key.rstrip("/").rpartition("/")
    if split != TRAIN_CHANNEL or not dataset_prefix:
        raise TrainingRequestError(f"train channel {train.uri} is not <dataset prefix>/{TRAIN_CHANNEL}/")
    return S3Location(train.bucket, f"{dataset_prefix}/{MANIFEST_FILE}")


def manifest_location(tuning: dict[str, Any]) -> S3Location:
    """manifest.json of the tuned dataset: from the trials' train channel (image trials), else from
    the static hyperparameter dataset_manifest (trials that read the features channel)."""
    definition = tuning["TrainingJobDefinition"]
    input_data_config = definition.get("InputDataConfig", [])
    if any(channel.get("ChannelName") == TRAIN_CHANNEL for channel in input_data_config):
        return manifest_from_channels(input_data_config)
    raw = definition.get("StaticHyperParameters", {}).get(DATASET_MANIFEST_HYPERPARAMETER)
    if raw is None:
        raise TrainingRequestError(
            f"the tuning job has neither a {TRAIN_CHANNEL!r} channel nor a "
            f"{DATASET_MANIFEST_HYPERPARAMETER} hyperparameter"
        )
    try:
        value = json.loads(raw)
        return S3Location.parse(value if isinstance(value, str) else "")
    except ValueError as error:
        raise TrainingRequestError(f"{DATASET_MANIFEST_HYPERPARAMETER}={raw!r}: {error}") from error


def read_manifest(store: S3Store, location: S3Location) -> bytes:
    """The manifest's bytes. TrainingRequestError (permanent) for a missing or oversized manifest;
    other S3 errors propagate (transient)."""
    try:
        return store.get_bytes(location.bucket, location.key, max_bytes=MAX_MANIFEST_BYTES)
    except ClientError as error:
        if error_code(error) in ("404", "NoSuchKey", "NotFound"):
            raise TrainingRequestError(f"dataset manifest {location.uri} not found") from error
        raise
    except ObjectTooLargeError as error:
        raise TrainingRequestError(str(error)) from error


def dataset_sizes(raw: bytes, location: S3Location) -> dict[str, int]:
    """Images per split from the manifest; TrainingRequestError (permanent) when it has none."""
    try:
        images = json.loads(raw)["images"]
        sizes = {split: images[split] for split in (TRAIN_CHANNEL, VALID_CHANNEL)}
    except (ValueError, KeyError, TypeError) as error:
        raise TrainingRequestError(
            f"dataset manifest {location.uri} has no images per split: {error}"
        ) from error
    if not all(
        isinstance(count, int) and not isinstance(count, bool) and count >= 0 for count in sizes.values()
    ):
        raise TrainingRequestError(f"dataset manifest {location.uri} has bad image counts: {sizes}")
    return sizes


def image_channels(tuning: dict[str, Any], raw: bytes, location: S3Location) -> list[dict[str, Any]]:
    """InputDataConfig of the profiled job: the trials' own channels when they trained from images,
    else the manifest's train/valid/test plus the trials' features channel. With it train_model.py
    trains the head from the features and runs the full model on the images only at the Debugger's
    relu_input steps (training/dogclf/profiled_features.py): the backbone once per image per run."""
    trials = tuning["TrainingJobDefinition"].get("InputDataConfig", [])
    if any(channel.get("ChannelName") == TRAIN_CHANNEL for channel in trials):
        return list(trials)
    features = [channel for channel in trials if channel.get("ChannelName") == contract.FEATURES_CHANNEL]
    try:
        channels = json.loads(raw)["channels"]
        uris = {channel: str(channels[channel]) for channel in CHANNELS}
    except (ValueError, KeyError, TypeError) as error:
        raise TrainingRequestError(
            f"dataset manifest {location.uri} has no image channels: {error}"
        ) from error
    return [*(s3_channel(channel, uri) for channel, uri in uris.items()), *features]


def _integer_hyperparameter(hyperparameters: dict[str, str], name: str) -> int:
    """A tuned or static hyperparameter as an int; values arrive JSON-encoded ('4', or '"64"' for a
    categorical one, as the SDK encodes them)."""
    raw = hyperparameters.get(name)
    if raw is None:
        raise TrainingRequestError(f"hyperparameter {name} is neither tuned nor static")
    try:
        value = json.loads(raw)
        value = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        value = None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TrainingRequestError(f"hyperparameter {name}={raw!r} is not an integer")
    return value


def build_training_request(
    tuning: dict[str, Any],
    settings: ProfiledJobSettings,
    sizes: dict[str, int],
    input_data_config: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """CreateTrainingJob request from DescribeHyperParameterTuningJob output (with BestTrainingJob),
    the dataset's images per split (``dataset_sizes``) and its image channels (``image_channels``;
    default: the trials' own channels). Its source dir is still the trials' (no smdebug):
    ``with_source_dir`` sets the profiled one."""
    best = tuning["BestTrainingJob"]
    definition = tuning["TrainingJobDefinition"]
    name = training_job_name(settings.job_name_prefix, tuning["HyperParameterTuningJobName"])
    hyperparameters = dict(definition.get("StaticHyperParameters", {}))
    # Tuned values come back as the strings SageMaker passed to the trial; keep them verbatim.
    hyperparameters.update(best.get("TunedHyperParameters", {}))
    hyperparameters["sagemaker_program"] = json.dumps("train_model.py")
    hyperparameters["sagemaker_job_name"] = json.dumps(name)
    batch_size = _integer_hyperparameter(hyperparameters, "batch_size")
    epochs = _integer_hyperparameter(hyperparameters, "epochs")
    try:
        hook = debug_hook_config(
            train_examples=sizes[TRAIN_CHANNEL],
            valid_examples=sizes[VALID_CHANNEL],
            batch_size=batch_size,
            epochs=epochs,
        )
    except ValueError as error:  # debug_hook_config refuses sizes it cannot plan with
        raise TrainingRequestError(f"no debug hook config for this job: {error}") from error
    artifacts = f"s3://{settings.artifacts_bucket}"
    algorithm = definition["AlgorithmSpecification"]
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "HyperParameters": hyperparameters,
        "AlgorithmSpecification": {
            "TrainingImage": training_image(
                settings.framework_version, settings.aws_region, settings.training_instance_type
            ),
            "TrainingInputMode": algorithm.get("TrainingInputMode", "File"),
            "MetricDefinitions": algorithm.get("MetricDefinitions", []),
        },
        "RoleArn": definition["RoleArn"],
        "InputDataConfig": definition["InputDataConfig"] if input_data_config is None else input_data_config,
        "OutputDataConfig": {"S3OutputPath": f"{artifacts}/training/"},
        "ResourceConfig": resource_config(settings.training_instance_type),
        "StoppingCondition": stopping_condition(settings.training_max_runtime_seconds),
        "Tags": [
            {"Key": "tuning-job", "Value": tuning["HyperParameterTuningJobName"]},
            {"Key": "best-trial", "Value": best["TrainingJobName"]},
        ],
    }
    if settings.debugger_mode == contract.DEBUGGER_MODE_BUILTIN:
        # The rule containers read the tensors that the service-side hook config makes smdebug save.
        request["DebugHookConfig"] = {"S3OutputPath": f"{artifacts}/debug-output/", **hook}
        rule_image = debugger_rule_image_uri(settings.aws_region)
        request["DebugRuleConfigurations"] = [
            {
                "RuleConfigurationName": rule,
                "RuleEvaluatorImage": rule_image,
                "RuleParameters": {"rule_to_invoke": contract.RULE_TO_INVOKE[rule]},
            }
            for rule in contract.RULE_NAMES
        ]
        request["ProfilerConfig"] = {
            "S3OutputPath": f"{artifacts}/profiler-output/",
            "ProfilingIntervalInMilliseconds": 500,
        }
        request["ProfilerRuleConfigurations"] = [
            {
                "RuleConfigurationName": contract.PROFILER_REPORT_RULE,
                "RuleEvaluatorImage": rule_image,
                "RuleParameters": {"rule_to_invoke": contract.PROFILER_REPORT_RULE},
            }
        ]
    # in-script: no ProfilerConfig either, not even {"DisableProfiler": true}. A request without one has
    # no service profiler to switch off: Debugger's monitoring is what the SageMaker Python SDK's
    # estimator adds (its _prepare_profiler_for_training creates ProfilerConfig(s3_output_path=...)
    # unless disable_profiler is set, aws/sagemaker-python-sdk src/sagemaker/estimator.py), and AWS's
    # "Turn off Debugger" page (https://docs.aws.amazon.com/sagemaker/latest/dg/debugger-turn-off-profiling.html)
    # turns it off through that SDK parameter; the CreateTrainingJob reference marks ProfilerConfig
    # optional. The script profiles itself (dogclf.profiling).
    return request


def with_source_dir(request: dict[str, Any], submit_directory: str) -> dict[str, Any]:
    """The request with its script-mode source dir set to ``submit_directory`` (JSON, as the SDK)."""
    hyperparameters = dict(request["HyperParameters"])
    hyperparameters["sagemaker_submit_directory"] = json.dumps(submit_directory)
    return {**request, "HyperParameters": hyperparameters}


class TuningFinishedResult(TypedDict, total=False):
    """What ``on_tuning_finished`` did: the function's return value and its idempotency record."""

    # "none": permanent, ``reason`` says why nothing started (notified too)
    action: Required[Literal["training-started", "training-already-started", "none"]]
    tuning_job_name: Required[str]
    status: Required[str]  # the tuning job's
    reason: str
    best_trial: str
    training_job_name: str
    objective: Any  # FinalHyperParameterTuningJobObjectiveMetric of the best trial
    hyperparameters: dict[str, str]
    dataset_images: dict[str, int]
    debugger_mode: str
    source_dir: str


def on_tuning_finished(
    tuning_job_name: str,
    status: str,
    settings: ProfiledJobSettings,
    jobs: SageMakerJobs,
    store: S3Store,
    notifier: Notifier,
) -> TuningFinishedResult:
    """Start the profiled training job for a Completed tuning job; notify and stop otherwise. The
    handler passes only this pipeline's tuning jobs (contract.is_pipeline_tuning_job)."""
    result: TuningFinishedResult
    if status != "Completed":
        tuning = jobs.describe_tuning_job(tuning_job_name)
        result = {
            "tuning_job_name": tuning_job_name,
            "status": status,
            "action": "none",
            "reason": tuning.get("FailureReason", f"tuning job {status}"),
        }
        notifier.publish(f"Tuning {status}: {tuning_job_name}", dict(result))
        return result

    # The state-change event does not carry the best trial: describe the tuning job for it.
    tuning = jobs.describe_tuning_job(tuning_job_name)
    if not tuning.get("BestTrainingJob"):
        result = {
            "tuning_job_name": tuning_job_name,
            "status": status,
            "action": "none",
            "reason": "no trial reported the objective metric",
        }
        notifier.publish(f"Tuning produced no model: {tuning_job_name}", dict(result))
        return result

    best = tuning["BestTrainingJob"]
    try:
        location = manifest_location(tuning)
        raw = read_manifest(store, location)
        sizes = dataset_sizes(raw, location)
        request = build_training_request(tuning, settings, sizes, image_channels(tuning, raw, location))
    except TrainingRequestError as error:
        # Permanent: the same tuning job and dataset give the same error on every retry.
        result = {
            "tuning_job_name": tuning_job_name,
            "status": status,
            "action": "none",
            "reason": f"profiled training not started: {error}",
            "best_trial": best["TrainingJobName"],
        }
        logger.error("profiled training not started", extra={"training": result})
        notifier.publish(f"Profiled training not started: {tuning_job_name}", dict(result))
        return result
    # The source dir with smdebug's wheels (S3 errors propagate: transient, Lambda retries).
    request = with_source_dir(
        request, ensure_uploaded(settings.training_code_dir, store, settings.artifacts_bucket, PROFILED)
    )
    created = jobs.create_training_job(request)
    result = {
        "tuning_job_name": tuning_job_name,
        "status": status,
        "action": "training-started" if created else "training-already-started",
        "training_job_name": request["TrainingJobName"],
        "best_trial": best["TrainingJobName"],
        "objective": best.get("FinalHyperParameterTuningJobObjectiveMetric"),
        "hyperparameters": best.get("TunedHyperParameters", {}),
        "dataset_images": sizes,
        "debugger_mode": settings.debugger_mode,
        "source_dir": json.loads(request["HyperParameters"]["sagemaker_submit_directory"]),
    }
    if created:
        notifier.publish(f"Profiled training started: {request['TrainingJobName']}", dict(result))
    else:
        logger.info("profiled training job already exists", extra={"training": result})
    return result
