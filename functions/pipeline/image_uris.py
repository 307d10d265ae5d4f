"""Container image URIs derived from the framework version, the region and the instance type.

Values follow the SageMaker SDK's image_uris config (tests/functions/test_image_uris.py checks them
against ``sagemaker.core.image_uris.retrieve`` and ``sagemaker.core.debugger``); the SDK itself is a
dev dependency only, too large for a Lambda package.
"""

from __future__ import annotations

# Deep Learning Containers publish PyTorch images from this account in the commercial regions below.
DLC_ACCOUNT = "763104351884"
# Debugger rule containers (built-in rules and ProfilerReport): one account per region.
DEBUGGER_RULE_ACCOUNTS = {
    "us-east-1": "503895931360",
    "us-east-2": "915447279597",
    "us-west-1": "685455198987",
    "us-west-2": "895741380848",
    "ca-central-1": "519511493484",
    "eu-west-1": "929884845733",
    "eu-west-2": "250201462417",
    "eu-west-3": "447278800020",
    "eu-central-1": "482524230118",
    "eu-north-1": "314864569078",
    "ap-northeast-1": "430734990657",
    "ap-northeast-2": "578805364391",
    "ap-southeast-1": "972752614525",
    "ap-southeast-2": "184798709955",
    "ap-south-1": "904829902805",
    "sa-east-1": "818342061345",
}
SUPPORTED_REGIONS = tuple(DEBUGGER_RULE_ACCOUNTS)
# Full framework version (template parameter; a pinned image tag, unlike the moving "2.6") -> python tag.
# Only versions with both a training and an inference image are listed.
FRAMEWORK_VERSIONS = {
    "2.3.0": "py311",
    "2.4.0": "py311",
    "2.5.1": "py311",
    "2.6.0": "py312",
}
_GPU_FAMILIES = ("ml.p", "ml.g")


class UnsupportedImageError(ValueError):
    """No known image for this framework version or region."""


def processor(instance_type: str | None) -> str:
    """ "gpu" for ml.p*/ml.g* instances, "cpu" otherwise (serverless endpoints are CPU only)."""
    return "gpu" if instance_type and instance_type.startswith(_GPU_FAMILIES) else "cpu"


def _check_region(region: str) -> None:
    if region not in DEBUGGER_RULE_ACCOUNTS:
        raise UnsupportedImageError(
            f"region {region} has no image mapping here; supported: {', '.join(SUPPORTED_REGIONS)}"
        )


def pytorch_image_uri(framework_version: str, region: str, scope: str, instance_type: str | None) -> str:
    """PyTorch DLC for scope "training" or "inference"; instance_type None means serverless (CPU)."""
    _check_region(region)
    if framework_version not in FRAMEWORK_VERSIONS:
        raise UnsupportedImageError(
            f"framework version {framework_version!r} unknown; supported: {', '.join(FRAMEWORK_VERSIONS)}"
        )
    if scope not in ("training", "inference"):
        raise ValueError(f"scope must be training or inference, not {scope!r}")
    tag = f"{framework_version}-{processor(instance_type)}-{FRAMEWORK_VERSIONS[framework_version]}"
    return f"{DLC_ACCOUNT}.dkr.ecr.{region}.amazonaws.com/pytorch-{scope}:{tag}"


def debugger_rule_image_uri(region: str) -> str:
    _check_region(region)
    return f"{DEBUGGER_RULE_ACCOUNTS[region]}.dkr.ecr.{region}.amazonaws.com/sagemaker-debugger-rules:latest"
