"""The image URIs the functions derive equal what the SageMaker SDK (dev dependency) retrieves."""

from __future__ import annotations

import pytest
from sagemaker.core import image_uris
from sagemaker.core.debugger import get_rule_container_image_uri

from pipeline.image_uris import (
    CPU_FAMILIES,
    FRAMEWORK_VERSIONS,
    GPU_FAMILIES,
    SUPPORTED_REGIONS,
    UnsupportedImageError,
    debugger_rule_image_uri,
    pytorch_image_uri,
)
from pipeline.settings import Settings

INSTANCE_TYPES = ("ml.g4dn.xlarge", "ml.m5.large")  # one GPU family, one CPU family
DEFAULT_VERSION = Settings.model_fields["framework_version"].default
# Every version in one region, every region for the default version (the SDK lookup is slow).
CASES = [(version, "us-east-1") for version in FRAMEWORK_VERSIONS] + [
    (DEFAULT_VERSION, region) for region in SUPPORTED_REGIONS if region != "us-east-1"
]


@pytest.mark.parametrize(("version", "region"), CASES)
def test_pytorch_images_match_the_sdk(version: str, region: str) -> None:
    for scope in ("training", "inference"):
        for instance_type in INSTANCE_TYPES:
            expected = image_uris.retrieve(
                "pytorch", region, version=version, instance_type=instance_type, image_scope=scope
            )
            assert pytorch_image_uri(version, region, scope, instance_type) == expected
    # Serverless endpoints: no instance type, CPU image.
    assert pytorch_image_uri(version, region, "inference", None) == pytorch_image_uri(
        version, region, "inference", "ml.m5.large"
    )


@pytest.mark.parametrize("region", SUPPORTED_REGIONS)
def test_debugger_rule_image_matches_the_sdk(region: str) -> None:
    assert debugger_rule_image_uri(region) == get_rule_container_image_uri(None, region)


@pytest.mark.parametrize(
    "field", ["features_instance_type", "tuning_instance_type", "training_instance_type"]
)
def test_template_defaults_resolve_to_sdk_images(field: str) -> None:
    """Every stage's default instance type (CPU) gets the image the SDK picks for it."""
    defaults = Settings.model_fields
    version = defaults["framework_version"].default
    instance_type = defaults[field].default
    region = "us-east-1"
    expected = image_uris.retrieve(
        "pytorch", region, version=version, instance_type=instance_type, image_scope="training"
    )
    assert pytorch_image_uri(version, region, "training", instance_type) == expected
    assert expected.endswith("-cpu-py312")


def test_unknown_region_or_version_is_a_clear_error() -> None:
    with pytest.raises(UnsupportedImageError, match="region mars-north-1"):
        pytorch_image_uri("2.6.0", "mars-north-1", "training", "ml.m5.large")
    with pytest.raises(UnsupportedImageError, match=r"framework version .1\.0."):
        pytorch_image_uri("1.0", "us-east-1", "training", "ml.m5.large")


# The image is chosen from an allow-list, and a type no PyTorch image here runs on
# is refused with its reason rather than handed an image that fails on it.
@pytest.mark.parametrize(
    ("instance_type", "reason"),
    [
        ("ml.c7g.xlarge", "Graviton"),
        ("ml.m7g.large", "Graviton"),
        ("ml.r7g.large", "Graviton"),
        ("ml.m6g.large", "Graviton"),
        ("ml.inf2.xlarge", "Neuron"),
        ("ml.trn1.2xlarge", "Neuron"),
        ("ml.g4ad.xlarge", "not a family"),
        ("m5.large", "not a family"),
    ],
)
def test_unsupported_instance_types_are_refused_with_the_reason(instance_type: str, reason: str) -> None:
    for scope in ("training", "inference"):
        with pytest.raises(UnsupportedImageError, match=reason) as caught:
            pytorch_image_uri(DEFAULT_VERSION, "us-east-1", scope, instance_type)
        assert "Supported: ml.<family>.<size>" in str(caught.value) and " m5," in str(caught.value)


def test_every_allowed_family_gets_the_image_the_sdk_gives_it() -> None:
    for family in CPU_FAMILIES + GPU_FAMILIES:
        instance_type = f"ml.{family}.xlarge"
        expected = image_uris.retrieve(
            "pytorch",
            "us-east-1",
            version=DEFAULT_VERSION,
            instance_type=instance_type,
            image_scope="training",
        )
        assert pytorch_image_uri(DEFAULT_VERSION, "us-east-1", "training", instance_type) == expected, family


def test_settings_refuse_an_unsupported_instance_type() -> None:
    with pytest.raises(ValueError, match="Graviton"):
        Settings(
            dataset_bucket="d",
            artifacts_bucket="a",
            idempotency_table="t",
            notification_topic_arn="arn:aws:sns:us-east-1:123456789012:t",
            sagemaker_role_arn="arn:aws:iam::123456789012:role/r",
            training_instance_type="ml.c7g.xlarge",
        )
