"""On a finished tuning job: start the profiled training job (train_model.py) with the best trial."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from pipeline.adapters.notify import Notifier
from pipeline.adapters.sagemaker import SageMakerJobs
from pipeline.images import debugger_rule_image_uri, pytorch_image_uri
from pipeline.observability import logger

if TYPE_CHECKING:  # pydantic is imported by the first call, not at import (cold start)
    from pipeline.settings import Settings

TRAINING_JOB_NAME_MAX = 63
# Built-in Debugger rules of the profiled job: rule_to_invoke value -> RuleConfigurationName.
BUILTIN_RULES = {
    "vanishing_gradient": "VanishingGradient",
    "overfit": "Overfit",
    "overtraining": "Overtraining",
    "poor_weight_initialization": "PoorWeightInitialization",
    "loss_not_decreasing": "LossNotDecreasing",
}
HOOK_COLLECTIONS = ("weights", "gradients", "losses", "biases")


def training_job_name(prefix: str, tuning_job_name: str) -> str:
    """<prefix>-train-<12 hex of the tuning job>: never matches the tuner's own trial names."""
    name = f"{prefix}-train-{hashlib.sha256(tuning_job_name.encode()).hexdigest()[:12]}"
    assert len(name) <= TRAINING_JOB_NAME_MAX, name
    return name


def build_training_request(tuning: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """CreateTrainingJob request from DescribeHyperParameterTuningJob output (with BestTrainingJob)."""
    best = tuning["BestTrainingJob"]
    definition = tuning["TrainingJobDefinition"]
    name = training_job_name(settings.job_name_prefix, tuning["HyperParameterTuningJobName"])
    hyperparameters = dict(definition.get("StaticHyperParameters", {}))
    # Tuned values come back as the strings SageMaker passed to the trial; keep them verbatim.
    hyperparameters.update(best.get("TunedHyperParameters", {}))
    hyperparameters["sagemaker_program"] = json.dumps("train_model.py")
    hyperparameters["sagemaker_job_name"] = json.dumps(name)
    artifacts = f"s3://{settings.artifacts_bucket}"
    algorithm = definition["AlgorithmSpecification"]
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "HyperParameters": hyperparameters,
        "AlgorithmSpecification": {
            "TrainingImage": pytorch_image_uri(
                settings.framework_version, settings.aws_region, "training", settings.training_instance_type
            ),
            "TrainingInputMode": algorithm.get("TrainingInputMode", "File"),
            "MetricDefinitions": algorithm.get("MetricDefinitions", []),
        },
        "RoleArn": definition["RoleArn"],
        "InputDataConfig": definition["InputDataConfig"],
        "OutputDataConfig": {"S3OutputPath": f"{artifacts}/training/"},
        "ResourceConfig": {
            "InstanceType": settings.training_instance_type,
            "InstanceCount": 1,
            "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.training_max_runtime_seconds},
        # The hook config is what makes smdebug in train_model.py save tensors (in-script rules need them).
        "DebugHookConfig": {
            "S3OutputPath": f"{artifacts}/debug-output/",
            "CollectionConfigurations": [
                *({"CollectionName": collection} for collection in HOOK_COLLECTIONS),
                # PoorWeightInitialization reads the ReLU inputs; smdebug has no default collection for them.
                {"CollectionName": "relu_input", "CollectionParameters": {"include_regex": ".*relu_input"}},
            ],
        },
        "Tags": [
            {"Key": "tuning-job", "Value": tuning["HyperParameterTuningJobName"]},
            {"Key": "best-trial", "Value": best["TrainingJobName"]},
        ],
    }
    if settings.debugger_mode == "builtin":
        rule_image = debugger_rule_image_uri(settings.aws_region)
        request["DebugRuleConfigurations"] = [
            {
                "RuleConfigurationName": configuration_name,
                "RuleEvaluatorImage": rule_image,
                "RuleParameters": {"rule_to_invoke": configuration_name},
            }
            for configuration_name in BUILTIN_RULES.values()
        ]
        request["ProfilerConfig"] = {
            "S3OutputPath": f"{artifacts}/profiler-output/",
            "ProfilingIntervalInMilliseconds": 500,
        }
        request["ProfilerRuleConfigurations"] = [
            {
                "RuleConfigurationName": "ProfilerReport",
                "RuleEvaluatorImage": rule_image,
                "RuleParameters": {"rule_to_invoke": "ProfilerReport"},
            }
        ]
    else:
        request["ProfilerConfig"] = {"DisableProfiler": True}
    return request


def on_tuning_finished(
    tuning_job_name: str, status: str, settings: Settings, jobs: SageMakerJobs, notifier: Notifier
) -> dict[str, Any]:
    """Start the profiled training job for a Completed tuning job; notify and stop otherwise."""
    if status != "Completed":
        tuning = jobs.describe_tuning_job(tuning_job_name)
        result = {
            "tuning_job_name": tuning_job_name,
            "status": status,
            "action": "none",
            "reason": tuning.get("FailureReason", f"tuning job {status}"),
        }
        notifier.publish(f"Tuning {status}: {tuning_job_name}", result)
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
        notifier.publish(f"Tuning produced no model: {tuning_job_name}", result)
        return result

    request = build_training_request(tuning, settings)
    created = jobs.create_training_job(request)
    best = tuning["BestTrainingJob"]
    result = {
        "tuning_job_name": tuning_job_name,
        "status": status,
        "action": "training-started" if created else "training-already-started",
        "training_job_name": request["TrainingJobName"],
        "best_trial": best["TrainingJobName"],
        "objective": best.get("FinalHyperParameterTuningJobObjectiveMetric"),
        "hyperparameters": best.get("TunedHyperParameters", {}),
    }
    if created:
        notifier.publish(f"Profiled training started: {request['TrainingJobName']}", result)
    else:
        logger.info("profiled training job already exists", extra={"training": result})
    return result
