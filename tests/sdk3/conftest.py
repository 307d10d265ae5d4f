"""The SDK conformance suite's v3 half: the SageMaker Python SDK v3, unmodified, against ``python -m
localcloud``.

Run with ``.venv`` (``make test-app``; requirements-dev.txt pins SDK v3), the interpreter the local
cloud itself runs in; SDK v2 (tests/sdk) has ``.venv-sdk2``, since the two SDKs cannot share one.
The local cloud, the client environment (the
``AWS_ENDPOINT_URL_*`` variables and dummy credentials it prints, the SDK's telemetry switched off in its
own config file) and the sample data are tests/sdk/conftest.py's fixtures, imported here; only the
session is v3's own: ``sagemaker.core.helper.session_helper.Session`` from a ``boto3.Session``, with
``default_bucket`` named so the SDK never asks STS for the account (as in tests/sdk/conftest.py).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from tests.sdk.conftest import client_env, local_cloud, sample_data, user_environment
from tests.sdk3.notebook import BUCKET

__all__ = ["client_env", "local_cloud", "sample_data", "user_environment"]


def _sagemaker_major() -> int | None:
    try:
        return int(metadata.version("sagemaker").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return None


# make test-app runs this folder with .venv (SDK v3); under .venv-sdk2 (SDK v2) it is not collected.
if _sagemaker_major() != 3:
    collect_ignore_glob = ["test_*.py"]


# SDK v3 checks the execution role client-side before a job or model (sagemaker/core/helper/
# iam_role_resolver.py: iam:SimulatePrincipalPolicy, then the role's trust policy). The local cloud
# answers SimulatePrincipalPolicy with IAM on (localcloud/iam/simulate.py), but this suite's cloud runs
# with IAM off (tests/sdk/conftest.py), and the stack's own execution role fails the SDK's training
# check (it has no ec2:* VPC actions and a namespace-conditioned cloudwatch:PutMetricData), on AWS as
# locally; so the suite turns the check off with the SDK's own switch, the one setting beyond the
# endpoints. docs/local.md's fidelity table lists it.
SKIP_ROLE_CHECK = {"SAGEMAKER_VALIDATE_ROLE": "false"}


@pytest.fixture(scope="session")
def session(user_environment: dict[str, str]) -> Any:
    import os

    import boto3
    from sagemaker.core.helper.session_helper import Session

    os.environ.update(SKIP_ROLE_CHECK)  # user_environment restores the whole environment afterwards
    boto_session = boto3.Session(region_name=user_environment["AWS_REGION"])
    return Session(boto_session=boto_session, default_bucket=BUCKET)


@pytest.fixture(scope="session")
def training_uri(session: Any, sample_data: Path) -> str:
    assert session.default_bucket() == BUCKET  # created on first use, as on AWS
    uri = session.upload_data(str(sample_data), key_prefix="sdk3-notebook/data")
    assert uri == f"s3://{BUCKET}/sdk3-notebook/data"
    return str(uri)
