"""The seed notebook's settings that do not depend on the SDK's version: tests/sdk/notebook.py (SDK v2)
and tests/sdk3/notebook.py (SDK v3) both import them (their SDKs cannot share one interpreter)."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

FRAMEWORK, PY_VERSION = "2.6.0", "py312"
# What a notebook user takes from the stack's outputs (the local cloud's state file; DescribeStacks on
# AWS): the SageMaker execution role, and the artifacts bucket, where that role may read everything but
# write job outputs only under training/ and a few other prefixes (template.yaml, SageMakerExecutionRole,
# WriteJobOutputs). The sessions put every object under JOB_PREFIX (the SDK's default_bucket_prefix).
EXECUTION_ROLE_OUTPUT = "SageMakerExecutionRoleArn"
ARTIFACTS_BUCKET_OUTPUT = "ArtifactsBucketName"
JOB_PREFIX = "training"
OBJECTIVE: dict[str, Any] = {"Name": "valid:accuracy", "Regex": "#metric valid:accuracy=([-+0-9.eE]+);"}
HYPERPARAMETERS: dict[str, Any] = {
    "weights": "none",
    "image_size": 64,
    "epochs": 1,
    "batch_size": 16,
    "num_workers": 0,
    "augment": False,
}
TRAINING_INSTANCE = "ml.m5.xlarge"


def jpeg(color: tuple[int, int, int] = (180, 90, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(buffer, format="JPEG")
    return buffer.getvalue()
