"""The local training job installs the source dir's requirements.txt the way the toolkit does in the
container: into a cached overlay over the image's environment, never into the image itself."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from localcloud.containerenv import overlay_python
from localcloud.sagemaker.server import SageMakerServer
from tests.support.sagemaker import client, local_s3, tar_gz, training_job_request

REPO = Path(__file__).resolve().parents[2]
BUCKET = "jobs"

# Imports what only the job's requirements bring (smdebug, numpy<2.3 for its writer) and what only the
# image has (the toolkit, torch), and says which numpy and smdebug it got.
NEEDS_SMDEBUG = r"""
import importlib.util, os, pathlib
import numpy, smdebug, torch, sagemaker_training.encoders
import scipy.special  # the image's scipy must work with the overlay's numpy (numpy<2 breaks it)
assert scipy.special.expit(0.0) == 0.5
numpy.zeros(2).tostring()  # what smdebug's writer calls; gone in numpy 2.3
pathlib.Path(os.environ["SM_MODEL_DIR"], "versions.txt").write_text(
    f"smdebug={smdebug.__version__} numpy={numpy.__version__}"
)
"""

BARE = r"""
import importlib.util, os, pathlib
assert importlib.util.find_spec("smdebug") is None, "smdebug must not be in the image's environment"
pathlib.Path(os.environ["SM_MODEL_DIR"], "ok.txt").write_text("bare")
"""


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    job_requirements = (REPO / "training" / "requirements.txt").read_text()
    logs: dict[str, list[str]] = {}
    lock = threading.Lock()

    def on_log(job: str, line: str) -> None:
        with lock:
            logs.setdefault(job, []).append(line)

    # The job overlay exists before the jobs start (make job-overlay builds it; here too if it is not
    # there). Then every package index is a dead port: the toolkit's own pip step must not need one.
    overlay_python(REPO / "training" / "requirements.txt")
    dead_index = {
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_EXTRA_INDEX_URL": "http://127.0.0.1:9/extra",
        "PIP_FIND_LINKS": str(REPO / "no-such-wheel-dir"),
        "PIP_RETRIES": "0",
        "PIP_DEFAULT_TIMEOUT": "2",
    }
    with pytest.MonkeyPatch.context() as patch, local_s3() as s3_url:
        for key, value in dead_index.items():
            patch.setenv(key, value)
        s3 = client("s3", s3_url)
        s3.create_bucket(Bucket=BUCKET)
        sources = {
            "with-req": {"train.py": NEEDS_SMDEBUG, "requirements.txt": job_requirements},
            "without-req": {"train.py": BARE},
            # --no-index: fails at once, offline, as a missing package does in the container.
            "bad-req": {"train.py": BARE, "requirements.txt": "--no-index\nno-such-package-xyz==1.0\n"},
        }
        for name, files in sources.items():
            s3.put_object(Bucket=BUCKET, Key=f"code/{name}.tar.gz", Body=tar_gz(files))
        s3.put_object(Bucket=BUCKET, Key="data/train/a.txt", Body=b"x")
        server = SageMakerServer(
            state_dir=tmp_path_factory.mktemp("sagemaker"), s3_endpoint_url=s3_url, on_log=on_log
        ).start()
        try:
            yield {"sm": client("sagemaker", server.url), "logs": logs, "s3": s3}
        finally:
            server.stop()


def _run(cloud: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    sm = cloud["sm"]
    sm.create_training_job(
        **training_job_request(
            name,
            BUCKET,
            f"s3://{BUCKET}/code/{source}.tar.gz",
            channels={"train": f"s3://{BUCKET}/data/train/"},
        )
    )
    try:
        sm.get_waiter("training_job_completed_or_stopped").wait(
            TrainingJobName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 600}
        )
    except botocore.exceptions.WaiterError as error:
        assert error.last_response["TrainingJobStatus"] == "Failed"
    return sm.describe_training_job(TrainingJobName=name)


def _model_file(cloud: dict[str, Any], desc: dict[str, Any], member: str) -> str:
    import io
    import tarfile

    bucket, key = desc["ModelArtifacts"]["S3ModelArtifacts"].removeprefix("s3://").split("/", 1)
    body = cloud["s3"].get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        extracted = tar.extractfile(member)
        assert extracted is not None
        return extracted.read().decode()


def test_source_dir_requirements_run_in_the_overlay_and_the_toolkit_finds_them_installed(cloud) -> None:
    desc = _run(cloud, "req-job", "with-req")
    log = cloud["logs"]["req-job"]
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert _model_file(cloud, desc, "versions.txt") == "smdebug=1.0.34 numpy=2.2.6"
    assert any("overlay" in line and "for requirements" in line for line in log)
    # The toolkit's own pip step ran, as in the container, and had nothing to download.
    assert any("Installing dependencies from requirements.txt" in line for line in log)
    assert any(line.startswith("Requirement already satisfied: smdebug==1.0.34") for line in log)
    assert not any(line.startswith(("Collecting ", "Downloading ")) for line in log)


def test_source_dir_without_requirements_runs_in_the_bare_image(cloud) -> None:
    desc = _run(cloud, "bare-job", "without-req")
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert not any("overlay" in line for line in cloud["logs"]["bare-job"])


def test_requirements_that_cannot_be_installed_fail_the_job_with_the_reason(cloud) -> None:
    desc = _run(cloud, "bad-req-job", "bad-req")
    assert desc["TrainingJobStatus"] == "Failed"
    assert "InstallRequirementsError" in desc["FailureReason"]
    assert "ModelArtifacts" not in desc
