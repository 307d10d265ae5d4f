"""The search the tuning request asks for: early stopping on, a wider default search, and managed spot
for the trials when UseSpotTraining is on. The new request fields are pinned as literals."""

from __future__ import annotations

import json

import botocore.session
from botocore.validate import validate_parameters
from fn_support import TRAINING_DIR

from pipeline.adapters.training_layer import metric_definitions
from pipeline.settings import Settings
from pipeline.tuning import build_tuning_request

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


def request(**env: str) -> dict:
    settings = Settings.from_env({**BASE, **env})
    return build_tuning_request(
        MANIFEST, settings, "s3://arts/code/x/sourcedir.tar.gz", metric_definitions(TRAINING_DIR)
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


def test_spot_trials_wait_longer_than_they_run_and_checkpoint_to_the_artifacts_bucket() -> None:
    built = request(USE_SPOT_TRAINING="true")
    name = built["HyperParameterTuningJobName"]
    definition = built["TrainingJobDefinition"]
    assert definition["EnableManagedSpotTraining"] is True
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert definition["CheckpointConfig"] == {
        "S3Uri": f"s3://arts/checkpoints/{name}/",
        "LocalPath": "/opt/ml/checkpoints",
    }


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


# The whole CreateHyperParameterTuningJob request for the stack defaults, written out by hand (the
# metric regexes are the one shared file's, not repeated here).
_CHANNELS = ("train", "valid", "test")
PINNED_TUNING_REQUEST = {
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
        "StaticHyperParameters": {
            "weights": '"imagenet"',
            "image_size": "224",
            "sagemaker_program": '"hpo.py"',
            "sagemaker_submit_directory": '"s3://arts/code/x/sourcedir.tar.gz"',
            "sagemaker_container_log_level": "20",
            "sagemaker_job_name": '"dogclf-hpo-b71c56a532fd"',
            "sagemaker_region": '"us-east-1"',
            "sagemaker_estimator_class_name": '"PyTorch"',
            "sagemaker_estimator_module": '"sagemaker.pytorch.estimator"',
        },
        "AlgorithmSpecification": {
            "TrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6.0-gpu-py312",
            "TrainingInputMode": "File",
            "MetricDefinitions": json.loads(
                (TRAINING_DIR / "dogclf" / "metric_definitions.json").read_text()
            )["MetricDefinitions"],
        },
        "RoleArn": "arn:aws:iam::123456789012:role/r",
        "InputDataConfig": [
            {
                "ChannelName": split,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://d/datasets/dogs/{split}/",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
            for split in _CHANNELS
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://arts/tuning/dogclf-hpo-b71c56a532fd/"},
        "ResourceConfig": {"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
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
