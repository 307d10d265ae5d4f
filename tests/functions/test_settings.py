"""Settings parsing: env strings from the template into typed values, bad values rejected."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipeline.settings import Settings

REQUIRED = {
    "DATASET_BUCKET": "d",
    "ARTIFACTS_BUCKET": "a",
    "INFERENCE_BUCKET": "i",
    "IDEMPOTENCY_TABLE": "t",
    "NOTIFICATION_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t",
    "SAGEMAKER_ROLE_ARN": "arn:aws:iam::1:role/r",
}


def test_template_strings_are_parsed() -> None:
    settings = Settings.from_env(
        {
            **REQUIRED,
            "AWS_REGION": "eu-west-1",
            "LEARNING_RATE_RANGE": "0.001,0.05",
            "BATCH_SIZE_VALUES": "16, 32",
            "EPOCHS_RANGE": "1,3",
            "GATE_BLOCKING_RULES": "VanishingGradient",
            "ACCURACY_THRESHOLD": "0.75",
            "MAX_TUNING_JOBS": "8",
        }
    )
    assert settings.aws_region == "eu-west-1"
    assert settings.learning_rate_range == (0.001, 0.05)
    assert settings.batch_size_values == [16, 32]
    assert settings.epochs_range == (1, 3)
    assert settings.gate_blocking_rules == ["VanishingGradient"]
    assert settings.accuracy_threshold == 0.75 and settings.max_tuning_jobs == 8


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EPOCHS_RANGE", "5,2"),
        ("LEARNING_RATE_RANGE", "0.1"),
        ("ACCURACY_THRESHOLD", "1.5"),
        ("ENDPOINT_MODE", "kubernetes"),
        ("JOB_NAME_PREFIX", "Way-Too-Long-Prefix"),
        ("GATE_BLOCKING_RULES", "VanishingGradients"),  # misspelt: it would never block
        ("DEBUGGER_MODE", "service"),
    ],
)
def test_bad_values_are_rejected(name: str, value: str) -> None:
    with pytest.raises(ValidationError):
        Settings.from_env({**REQUIRED, name: value})


def test_missing_required_setting_names_it() -> None:
    with pytest.raises(ValidationError, match="dataset_bucket"):
        Settings.from_env({key: value for key, value in REQUIRED.items() if key != "DATASET_BUCKET"})


def test_endpoint_name_follows_the_prefix_unless_set() -> None:
    assert Settings.from_env({**REQUIRED, "JOB_NAME_PREFIX": "pets"}).endpoint_name == "pets-endpoint"
    assert Settings.from_env({**REQUIRED, "ENDPOINT_NAME": "mine"}).endpoint_name == "mine"


def test_features_stage_settings() -> None:
    defaults = Settings.from_env(REQUIRED)
    assert defaults.augment_trials is False  # the features stage runs unless AugmentTrials says so
    assert (defaults.features_instance_type, defaults.tuning_instance_type) == ("ml.m5.xlarge", "ml.m5.large")
    assert defaults.training_instance_type == "ml.m5.xlarge"
    chosen = Settings.from_env(
        {**REQUIRED, "AUGMENT_TRIALS": "true", "FEATURES_INSTANCE_TYPE": "ml.g4dn.xlarge"}
    )
    assert chosen.augment_trials is True and chosen.features_instance_type == "ml.g4dn.xlarge"
    with pytest.raises(ValidationError):
        Settings.from_env({**REQUIRED, "AUGMENT_TRIALS": "sometimes"})
