"""The SDK conformance suite's v3 half: the SageMaker Python SDK v3, unmodified, against ``python -m
localcloud``.

Run with ``.venv`` (``make test-app``; requirements-dev.txt pins SDK v3), the interpreter the local
cloud itself runs in; SDK v2 (tests/sdk) has ``.venv-sdk2``, since the two SDKs cannot share one.
The local cloud, the client environment (the
``AWS_ENDPOINT_URL_*`` variables and dummy credentials it prints, the SDK's telemetry switched off in its
own config file) and the sample data are tests/sdk/conftest.py's fixtures, imported here. Set in this
process for this folder's module only (``user_environment``, module-scoped), and the session is v3's
own: ``sagemaker.core.helper.session_helper.Session`` from a ``boto3.Session``, with
``default_bucket`` named so the SDK never asks STS for the account (as in tests/sdk/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from tests.sdk.conftest import (
    artifacts_bucket,
    client_env,
    environment_of,
    execution_role,
    local_cloud,
    sample_data,
)
from tests.sdk.settings import JOB_PREFIX

__all__ = ["artifacts_bucket", "client_env", "execution_role", "local_cloud", "sample_data"]


def _sagemaker_major() -> int | None:
    try:
        return int(metadata.version("sagemaker").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return None


# make test-app runs this folder with .venv (SDK v3); under .venv-sdk2 (SDK v2) it is not collected.
if _sagemaker_major() != 3:
    collect_ignore_glob = ["test_*.py"]


# SDK v3 checks the execution role client-side before a job or model (sagemaker/core/helper/
# iam_role_resolver.py: iam:SimulatePrincipalPolicy, then the role's trust policy with GetRole). The
# local cloud answers both (localcloud/iam/simulate.py), and the check refuses the stack's execution
# role for training, as IAM's simulator on AWS would: the SDK requires ec2:* VPC actions the role does
# not have and cloudwatch:PutMetricData, which the role allows only under a cloudwatch:namespace
# condition the check gives no value for (tests/localcloud/iam/test_iam_cloud.py shows the refusal). Until
# the template grants those (a decision about the role, docs/local.md's fidelity table), the suite
# turns the check off with the SDK's own switch, the one setting beyond the endpoints.
SKIP_ROLE_CHECK = {"SAGEMAKER_VALIDATE_ROLE": "false"}


@pytest.fixture(scope="module")
def user_environment(client_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The client variables in this process for this folder's tests only: make test-app runs other
    folders after this one in the same process (pytest-xdist workers included), and those must not
    reach the local cloud through a leftover ``AWS_ENDPOINT_URL_*``. The SDK's role check is off here
    (SKIP_ROLE_CHECK)."""
    with environment_of({**client_env, **SKIP_ROLE_CHECK}) as environment:
        yield environment


@pytest.fixture(scope="module")
def session(user_environment: dict[str, str], artifacts_bucket: str) -> Any:
    import boto3
    from sagemaker.core.helper.session_helper import Session

    boto_session = boto3.Session(region_name=user_environment["AWS_REGION"])
    return Session(
        boto_session=boto_session, default_bucket=artifacts_bucket, default_bucket_prefix=JOB_PREFIX
    )


@pytest.fixture(scope="module")
def training_uri(session: Any, sample_data: Path, artifacts_bucket: str) -> str:
    assert session.default_bucket() == artifacts_bucket
    uri = session.upload_data(str(sample_data), key_prefix="sdk3-notebook/data")
    assert uri == f"s3://{artifacts_bucket}/{JOB_PREFIX}/sdk3-notebook/data"
    return str(uri)
