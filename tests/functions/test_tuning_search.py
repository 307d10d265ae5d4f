"""The search the tuning request asks for: early stopping on, a wider default search, managed spot for
the trials when UseSpotTraining is on, and what the trials train from (the features channel, or the
images with AugmentTrials). The whole request for the stack defaults is a request snapshot
(tests/fixtures/requests/create_hyper_parameter_tuning_job.json, checked against botocore's service model;
request_snapshots.py says how to regenerate it); the fields that carry its decisions are asserted by name."""

from __future__ import annotations

import json

from fn_support import TRAINING_DIR
from request_snapshots import RequestSnapshots, load_snapshot

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


# The CreateHyperParameterTuningJob request for the stack defaults (BASE): trials read one object, the
# features.
SNAPSHOT = "create_hyper_parameter_tuning_job"


def test_the_tuning_request_for_the_stack_defaults_is_its_snapshot(
    request_snapshot: RequestSnapshots,
) -> None:
    request_snapshot.check(SNAPSHOT, request(), "CreateHyperParameterTuningJob")


def test_the_default_search_tunes_three_hyperparameters_for_valid_accuracy_on_the_features() -> None:
    """The decisions of the tuning request, by name: what is searched and judged, what the trials
    read and run, on which machine (the settings' defaults)."""
    built = request()
    config = built["HyperParameterTuningJobConfig"]
    metrics = json.loads((TRAINING_DIR / "dogclf" / "metric_definitions.json").read_text())
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "valid:accuracy"}
    assert config["Strategy"] == "Bayesian"
    ranges = config["ParameterRanges"]
    assert [(r["Name"], r["MinValue"], r["MaxValue"]) for r in ranges["ContinuousParameterRanges"]] == [
        ("learning_rate", "0.0001", "0.1")
    ]
    assert [(r["Name"], r["MinValue"], r["MaxValue"]) for r in ranges["IntegerParameterRanges"]] == [
        ("epochs", "2", "5")
    ]
    assert ranges["CategoricalParameterRanges"] == [{"Name": "batch_size", "Values": ["32", "64", "128"]}]
    definition = built["TrainingJobDefinition"]
    assert [
        (c["ChannelName"], c["DataSource"]["S3DataSource"]["S3Uri"]) for c in definition["InputDataConfig"]
    ] == [("features", FEATURES_URI)]
    static = {key: json.loads(value) for key, value in definition["StaticHyperParameters"].items()}
    assert static["sagemaker_program"] == "hpo.py" and "augment" not in static
    assert static["dataset_manifest"] == MANIFEST_URI
    assert static["weights"] == "imagenet" and static["image_size"] == 224
    assert definition["AlgorithmSpecification"]["MetricDefinitions"] == metrics["MetricDefinitions"]
    assert definition["ResourceConfig"]["InstanceType"] == "ml.m5.large"
    assert definition["AlgorithmSpecification"]["TrainingImage"].endswith(":2.6.0-cpu-py312")


def test_augmented_trials_read_the_image_channels_and_say_augment() -> None:
    """AugmentTrials: the channels and one static hyperparameter differ from the snapshot's request."""
    built = request(TuningData.from_images(MANIFEST, MANIFEST_URI, augment=True))
    definition = built["TrainingJobDefinition"]
    assert [
        (c["ChannelName"], c["DataSource"]["S3DataSource"]["S3Uri"]) for c in definition["InputDataConfig"]
    ] == [
        ("train", "s3://d/datasets/dogs/train/"),
        ("valid", "s3://d/datasets/dogs/valid/"),
        ("test", "s3://d/datasets/dogs/test/"),
    ]
    features = load_snapshot(SNAPSHOT)["TrainingJobDefinition"]
    assert definition["StaticHyperParameters"] == {**features["StaticHyperParameters"], "augment": "true"}
    rest = {k: v for k, v in definition.items() if k not in ("InputDataConfig", "StaticHyperParameters")}
    assert rest == {
        k: v for k, v in features.items() if k not in ("InputDataConfig", "StaticHyperParameters")
    }


def test_a_gpu_tuning_instance_gets_the_gpu_image() -> None:
    definition = request(TUNING_INSTANCE_TYPE="ml.g4dn.xlarge")["TrainingJobDefinition"]
    assert definition["AlgorithmSpecification"]["TrainingImage"].endswith(":2.6.0-gpu-py312")
    assert definition["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"
