"""Container image URIs derived from the framework version, the region and the instance type.

Values follow the SageMaker SDK's image_uris config (tests/functions/test_image_uris.py checks them
against ``sagemaker.core.image_uris.retrieve`` and ``sagemaker.core.debugger``); the SDK itself is a
dev dependency only, too large for a Lambda package.
"""

from __future__ import annotations

import re

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
# The instance families the pytorch-training / pytorch-inference images run on: x86_64 CPU families
# (the "cpu" tag) and NVIDIA GPU families (the "gpu" tag, CUDA). Others need other images, listed in
# aws/deep-learning-containers' available_images.md: Graviton types (ml.c7g, ml.m7g, ml.r7g, ...) the
# arm64 repositories (pytorch-training-arm64, pytorch-inference-arm64, "Graviton DLCs are renamed to
# ARM64 DLCs" from 2.5), Inferentia/Trainium (ml.inf1, ml.inf2, ml.trn1) the Neuron ones
# (pytorch-*-neuronx); ml.g4ad has AMD GPUs, which the CUDA images cannot use. So a type outside
# these lists is refused with a clear error instead of getting an image that cannot run on it.
CPU_FAMILIES = (
    "m4", "m5", "m5d", "m6i", "m6id", "m7i", "c4", "c5", "c5d", "c5n", "c6i", "c6id", "c6in", "c7i",
    "r5", "r5d", "r6i", "r6id", "r7i", "t2", "t3",
)  # fmt: skip
GPU_FAMILIES = ("p3", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en", "g4dn", "g5", "g6", "g6e")
# The same list as one regular expression: the template's AllowedPattern of every instance-type
# parameter (tests/template checks they are equal), so `sam deploy` refuses the others up front.
INSTANCE_TYPE_PATTERN = rf"^ml\.({'|'.join(CPU_FAMILIES + GPU_FAMILIES)})\.(medium|large|[0-9]*xlarge)$"
_INSTANCE_TYPE = re.compile(INSTANCE_TYPE_PATTERN)


class UnsupportedImageError(ValueError):
    """No known image for this framework version, region or instance type (permanent: a setting)."""


def check_instance_type(instance_type: str) -> str:
    """``instance_type`` if the PyTorch images run on it, else UnsupportedImageError saying why."""
    match = _INSTANCE_TYPE.match(instance_type)
    if match:
        return instance_type
    family = instance_type.removeprefix("ml.").split(".")[0]
    if re.fullmatch(r"[a-z]+[0-9]+[a-z]*g[a-z]*", family) and not family.startswith(("g", "p")):
        why = "a Graviton (arm64) type; the x86_64 images do not run on it"
    elif family.startswith(("inf", "trn")):
        why = "an Inferentia/Trainium type, which needs the Neuron images"
    else:
        why = "not a family the PyTorch CPU (x86_64) or GPU (CUDA) images are known to run on"
    raise UnsupportedImageError(
        f"instance type {instance_type!r} is {why}. Supported: ml.<family>.<size> with family one of "
        f"{', '.join(CPU_FAMILIES)} (CPU) or {', '.join(GPU_FAMILIES)} (GPU)"
    )


def processor(instance_type: str | None) -> str:
    """ "gpu" for the GPU families, "cpu" for the CPU ones and for None (serverless endpoints are CPU
    only); any other type is refused (check_instance_type)."""
    if instance_type is None:
        return "cpu"
    family = check_instance_type(instance_type).split(".")[1]
    return "gpu" if family in GPU_FAMILIES else "cpu"


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
