"""The search the tuning request asks for: early stopping on, a wider default search, managed spot for
the trials when UseSpotTraining is on, and what the trials train from (the features channel, or the
images with AugmentTrials). The whole request is pinned as a literal."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
from botocore.validate import validate_parameters
from fn_support import TRAINING_DIR

from pipeline.adapters.training_layer import metric_definitions
from pipeline.settings import Settings
from pipeline.tuning_stage import TuningData, build_tuning_request

BASE = {
    "DATASET_BUCKET": "d",
    "ARTIFACTS_BUCKET": "arts",
    "INFERENCE_BUCKET": "i",
    "IDEMPOTENCY_TABLE": "t",
    "NOTIFICATION_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:t",
    "SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/r",
    "TRAINING_CODE_DIR": str(TRAINING_DIR),
    "TRAINING_MAX_RUNTIME_SECONDS": "3600",
}
MANIFEST = {
    "dataset_id": "dogs-0123456789ab",
    "channels": {split: f"s3://d/datasets/dogs/{split}/" for split in ("train", "valid", "test")},
}
MANIFEST_URI = "s3://d/datasets/dogs/manifest.json"
FEATURES_URI = "s3://arts/features/0a1b2c3d4e5f/dogclf-feat-0a1b2c3d4e5f/output/model.tar.gz"
FEATURES = TuningData.from_features("dogs-0123456789ab", MANIFEST_URI, FEATURES_URI)


def request(data: TuningData = FEATURES, **env: str) -> dict:
    settings = Settings.from_env({**BASE, **env})
    return build_tuning_request(
        data, settings, "s3://arts/code/x/sourcedir.tar.gz", metric_definitions(TRAINING_DIR)
    )


def test_early_stopping_is_auto_and_the_default_search_is_wider() -> None:
    built = request()
    config = built["HyperParameterTuningJobConfig"]
    assert config["TrainingJobEarlyStoppingType"] == "Auto"
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 12, "MaxParallelTrainingJobs": 2}


def test_on_demand_trials_have_no_spot_fields() -> None:
    definition = request()["TrainingJobDefinition"]
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert "EnableManagedSpotTraining" not in definition
    assert "CheckpointConfig" not in definition


def test_spot_trials_wait_longer_than_they_run_and_promise_no_checkpoints() -> None:
    """hpo.py keeps no checkpoints, so the request configures none (an interrupted trial restarts)."""
    definition = request(USE_SPOT_TRAINING="true")["TrainingJobDefinition"]
    assert definition["EnableManagedSpotTraining"] is True
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert "CheckpointConfig" not in definition


def test_no_training_script_uses_the_checkpoint_directory() -> None:
    """Were a script to write /opt/ml/checkpoints, the trials would need a CheckpointConfig again."""
    scripts = [*TRAINING_DIR.glob("*.py"), *(TRAINING_DIR / "dogclf").rglob("*.py")]
    assert scripts
    assert [path.name for path in scripts if "/opt/ml/checkpoints" in path.read_text()] == []


def test_the_template_defaults_match_the_settings_defaults() -> None:
    from pathlib import Path

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load((Path(TRAINING_DIR).parent / "template.yaml").read_text(), Loader=Loader)
    parameters = template["Parameters"]
    assert parameters["MaxTuningJobs"]["Default"] == Settings.model_fields["max_tuning_jobs"].default == 12
    assert parameters["UseSpotTraining"]["Default"] == "false"
    assert Settings.model_fields["use_spot_training"].default is False
    assert parameters["AugmentTrials"]["Default"] == "false"
    assert Settings.model_fields["augment_trials"].default is False
    for parameter, field in (
        ("FeaturesInstanceType", "features_instance_type"),
        ("TuningInstanceType", "tuning_instance_type"),
        ("TrainingInstanceType", "training_instance_type"),
    ):
        assert parameters[parameter]["Default"] == Settings.model_fields[field].default, parameter


# The whole CreateHyperParameterTuningJob request for the stack defaults, written out by hand (the
# metric regexes are the one shared file's, not repeated here): trials read one object, the features.
PINNED_TUNING_REQUEST: dict[str, Any] = {
    "HyperParameterTuningJobName": "dogclf-hpo-b71c56a532fd",
    "HyperParameterTuningJobConfig": {
        "Strategy": "Bayesian",
        "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "valid:accuracy"},
        "ResourceLimits": {"MaxNumberOfTrainingJobs": 12, "MaxParallelTrainingJobs": 2},
        "ParameterRanges": {
            "ContinuousParameterRanges": [
                {
                    "Name": "learning_rate",
                    "MinValue": "0.0001",
                    "MaxValue": "0.1",
                    "ScalingType": "Logarithmic",
                }
            ],
            "IntegerParameterRanges": [
                {"Name": "epochs", "MinValue": "2", "MaxValue": "5", "ScalingType": "Auto"}
            ],
            "CategoricalParameterRanges": [{"Name": "batch_size", "Values": ["32", "64", "128"]}],
        },
        "TrainingJobEarlyStoppingType": "Auto",
    },
    "TrainingJobDefinition": {
        "Environment": {"USE_SMDEBUG": "0"},
        "StaticHyperParameters": {
            "weights": '"imagenet"',
            "image_size": "224",
            "dataset_manifest": '"s3://d/datasets/dogs/manifest.json"',
            "sagemaker_program": '"hpo.py"',
            "sagemaker_submit_directory": '"s3://arts/code/x/sourcedir.tar.gz"',
            "sagemaker_container_log_level": "20",
            "sagemaker_job_name": '"dogclf-hpo-b71c56a532fd"',
            "sagemaker_region": '"us-east-1"',
            "sagemaker_estimator_class_name": '"PyTorch"',
            "sagemaker_estimator_module": '"sagemaker.pytorch.estimator"',
        },
        "AlgorithmSpecification": {
            "TrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6.0-cpu-py312",
            "TrainingInputMode": "File",
            "MetricDefinitions": json.loads(
                (TRAINING_DIR / "dogclf" / "metric_definitions.json").read_text()
            )["MetricDefinitions"],
        },
        "RoleArn": "arn:aws:iam::123456789012:role/r",
        "InputDataConfig": [
            {
                "ChannelName": "features",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": "s3://arts/features/0a1b2c3d4e5f/dogclf-feat-0a1b2c3d4e5f/output/model.tar.gz",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://arts/tuning/dogclf-hpo-b71c56a532fd/"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    },
    "Tags": [{"Key": "dataset-id", "Value": "dogs-0123456789ab"}],
}


def test_the_tuning_request_for_the_stack_defaults_is_the_pinned_one() -> None:
    assert request() == PINNED_TUNING_REQUEST


def test_the_pinned_tuning_request_is_valid_create_hyper_parameter_tuning_job_input() -> None:
    model = botocore.session.get_session().get_service_model("sagemaker")
    validate_parameters(
        PINNED_TUNING_REQUEST, model.operation_model("CreateHyperParameterTuningJob").input_shape
    )


def test_augmented_trials_read_the_image_channels_and_say_augment() -> None:
    """AugmentTrials: the channels and one static hyperparameter differ from the pinned request."""
    built = request(TuningData.from_images(MANIFEST, MANIFEST_URI, augment=True))
    definition = built["TrainingJobDefinition"]
    assert [
        (c["ChannelName"], c["DataSource"]["S3DataSource"]["S3Uri"]) for c in definition["InputDataConfig"]
    ] == [
        ("train", "s3://d/datasets/dogs/train/"),
        ("valid", "s3://d/datasets/dogs/valid/"),
        ("test", "s3://d/datasets/dogs/test/"),
    ]
    pinned = PINNED_TUNING_REQUEST["TrainingJobDefinition"]
    assert definition["StaticHyperParameters"] == {**pinned["StaticHyperParameters"], "augment": "true"}
    rest = {k: v for k, v in definition.items() if k not in ("InputDataConfig", "StaticHyperParameters")}
    assert rest == {k: v for k, v in pinned.items() if k not in ("InputDataConfig", "StaticHyperParameters")}


def test_a_gpu_tuning_instance_gets_the_gpu_image() -> None:
    definition = request(TUNING_INSTANCE_TYPE="ml.g4dn.xlarge")["TrainingJobDefinition"]
    assert definition["AlgorithmSpecification"]["TrainingImage"].endswith(":2.6.0-gpu-py312")
    assert definition["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"
