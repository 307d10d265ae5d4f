"""The SDK conformance suite: AWS's own clients, unmodified, against ``python -m localcloud``.

Run with ``.venv-sdk2`` (``make test-sdk``): the SageMaker Python SDK v2 and the AWS CLI v1 live there
(requirements-sdk2.txt); the local cloud itself runs as a subprocess with ``.venv``, as a user starts it.
The only settings the clients get are the ones a user of a local endpoint sets:

- the ``AWS_ENDPOINT_URL_*`` variables and dummy credentials the local cloud prints (its state.json);
- for the SDK v2, a ``sagemaker.Session`` built from a ``boto3.Session`` with ``default_bucket``
  named. SDK v2 builds its STS client with an explicit regional endpoint
  (sagemaker/session.py ``generate_default_sagemaker_bucket_name`` and ``account_id``:
  ``endpoint_url=sts_regional_endpoint(region)``), which wins over ``AWS_ENDPOINT_URL_STS``. With
  ``default_bucket`` given (and ``role`` passed to each estimator), the SDK never calls STS;
- the SDK's telemetry switched off in the SDK's own config file (``TelemetryOptOut``), since it
  would send a request to an AWS address.

The cloud runs with ``LOCALCLOUD_DEBUGGER_ACCESS=open`` (an account whose Debugger API is open; a new
account's is closed, and then the SDK gets AWS's refusal) and with IAM enforced, as by default: the flows
pass the stack's execution role (its ``SageMakerExecutionRoleArn`` output) and keep every object in
the stack's artifacts bucket under the prefix that role may write (tests/sdk/settings.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CLOUD_PYTHON = REPO / ".venv" / "bin" / "python"
READY_LINE = "Press Ctrl-C to stop."
START_TIMEOUT_S = 180
SDK_CONFIG = """\
SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
"""


class LocalCloudProcess:
    """``python -m localcloud`` in a subprocess: its environment (state.json) and its output."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.lines: list[str] = []
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VIRTUAL_ENV"))},
            "LOCALCLOUD_DEBUGGER_ACCESS": "open",
            "PYTHONUNBUFFERED": "1",
        }
        self.process = subprocess.Popen(
            [str(CLOUD_PYTHON), "-m", "localcloud", "--state-dir", str(state_dir)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def wait_ready(self) -> dict[str, Any]:
        """Read its output until it says it serves (or exits); then its state file."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.strip() == READY_LINE:
                state: dict[str, Any] = json.loads((self.state_dir / "state.json").read_text())
                return state
        raise RuntimeError("the local cloud exited before it served:\n" + "\n".join(self.lines[-40:]))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # keep_running stops the cloud on SIGTERM
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture(scope="session")
def local_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not CLOUD_PYTHON.exists():
        pytest.fail(f"{CLOUD_PYTHON} not found: build it with `make venvs`")
    cloud = LocalCloudProcess(tmp_path_factory.mktemp("localcloud"))
    try:
        state = cloud.wait_ready()
        yield state
    finally:
        cloud.stop()


@pytest.fixture(scope="session")
def client_env(local_cloud: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What a user exports to point AWS's clients at the local cloud (as it prints them)."""
    config = tmp_path_factory.mktemp("sdk-config") / "config.yaml"
    config.write_text(SDK_CONFIG)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        **local_cloud["environment"],
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(config),
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
        "AWS_CONFIG_FILE": str(config.with_name("no-aws-config")),
        "AWS_SHARED_CREDENTIALS_FILE": str(config.with_name("no-aws-credentials")),
    }


@contextlib.contextmanager
def environment_of(client_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """This process's environment replaced by ``client_env`` for the block, then restored."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(client_env)
    try:
        yield client_env
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def user_environment(client_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The same variables in this process, for the SDK (a user's notebook kernel has them set)."""
    with environment_of(client_env) as environment:
        yield environment


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample dataset (4 classes, 64 px) in one top-level folder, as the extracted zip has it."""
    from tools.sample_data import write_sample_tree

    root = tmp_path_factory.mktemp("sample")
    write_sample_tree(
        root / "dogImages",
        num_classes=3,
        train_per_class=12,
        valid_per_class=4,
        test_per_class=4,
        image_size=64,
        seed=3,
    )
    return root


@pytest.fixture(scope="session")
def execution_role(local_cloud: dict[str, Any]) -> str:
    """The stack's SageMaker execution role, from its outputs in the state file, as a notebook reads it."""
    from tests.sdk.settings import EXECUTION_ROLE_OUTPUT

    return str(local_cloud["outputs"][EXECUTION_ROLE_OUTPUT])


@pytest.fixture(scope="session")
def artifacts_bucket(local_cloud: dict[str, Any]) -> str:
    from tests.sdk.settings import ARTIFACTS_BUCKET_OUTPUT

    return str(local_cloud["outputs"][ARTIFACTS_BUCKET_OUTPUT])


@pytest.fixture(scope="session")
def session(user_environment: dict[str, str], artifacts_bucket: str) -> Any:
    """A user's session: boto3 picks the endpoints up from the environment; the stack's artifacts
    bucket is named, with the prefix under which its execution role may write (settings.JOB_PREFIX)."""
    import boto3
    import sagemaker

    from tests.sdk.settings import JOB_PREFIX

    boto_session = boto3.Session(region_name=user_environment["AWS_REGION"])
    return sagemaker.Session(
        boto_session=boto_session, default_bucket=artifacts_bucket, default_bucket_prefix=JOB_PREFIX
    )


@pytest.fixture(scope="session")
def training_uri(session: Any, sample_data: Path, artifacts_bucket: str) -> str:
    from tests.sdk.settings import JOB_PREFIX

    assert session.default_bucket() == artifacts_bucket
    uri = session.upload_data(str(sample_data), key_prefix="sdk-notebook/data")
    assert uri == f"s3://{artifacts_bucket}/{JOB_PREFIX}/sdk-notebook/data"
    return str(uri)


@pytest.fixture(scope="session")
def tuner(session: Any, training_uri: str, execution_role: str) -> Any:
    """hpo.py under a HyperparameterTuner with the SDK's default request shape; one trial."""
    from sagemaker.tuner import ContinuousParameter, HyperparameterTuner

    from tests.sdk.notebook import pytorch_estimator
    from tests.sdk.settings import HYPERPARAMETERS, OBJECTIVE

    estimator = pytorch_estimator(session, execution_role, "hpo.py", hyperparameters=HYPERPARAMETERS)
    tuner = HyperparameterTuner(
        estimator,
        objective_metric_name=OBJECTIVE["Name"],
        hyperparameter_ranges={"learning_rate": ContinuousParameter(0.001, 0.01)},
        metric_definitions=[OBJECTIVE],
        objective_type="Maximize",
        max_jobs=1,
        max_parallel_jobs=1,
    )
    tuner.fit({"training": training_uri})
    tuner.wait()
    return tuner
