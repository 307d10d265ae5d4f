"""The local training job installs the source dir's requirements.txt the way the toolkit does in the
container: into a cached overlay over the image's environment, never into the image itself, and with
no package index reachable: the profiled source dir's shipped wheels install, anything else fails."""

from __future__ import annotations

import io
import tarfile
import threading
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest

from localcloud.environment.containerenv import REPO_ROOT
from localcloud.sagemaker.server import SageMakerServer
from pipeline.source_dir import PROFILED, pack  # the Lambda's own packer
from tests.support.fixtures import fixture_text
from tests.support.sagemaker import client, local_s3, tar_gz, training_job_request

pytestmark = pytest.mark.slow  # training jobs through the training toolkit (and its pip)

BUCKET = "jobs"

# Imports what only the job's requirements bring (smdebug, numpy<2.3 for its writer) and what only the
# image has (the toolkit, torch), and says which numpy and smdebug it got.
NEEDS_SMDEBUG = fixture_text("sagemaker/needs_smdebug_train.py")

BARE = fixture_text("sagemaker/bare_train.py")


def _profiled_requirements_and_wheels() -> dict[str, bytes]:
    """requirements.txt and wheels/ of the profiled source dir exactly as the Lambda packs it."""
    archive, _ = pack(REPO_ROOT / "training", PROFILED)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {
            member.name: tar.extractfile(member).read()  # type: ignore[union-attr]
            for member in tar.getmembers()
            if member.isfile() and (member.name == "requirements.txt" or member.name.startswith("wheels/"))
        }


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    logs: dict[str, list[str]] = {}
    lock = threading.Lock()

    def on_log(job: str, line: str) -> None:
        with lock:
            logs.setdefault(job, []).append(line)

    # No overlay is prepared and no index is reachable from a job (the emulator gives every job's pip a
    # dead index and no pip config): the profiled job's requirements install from its own wheels or fail.
    with local_s3() as s3_url:
        s3 = client("s3", s3_url)
        s3.create_bucket(Bucket=BUCKET)
        sources: dict[str, dict[str, str | bytes]] = {
            "with-req": {"train.py": NEEDS_SMDEBUG, **_profiled_requirements_and_wheels()},
            "without-req": {"train.py": BARE},
            # A requirement that only an index could give: the job fails, offline, at once.
            "needs-index": {"train.py": BARE, "requirements.txt": "six==1.16.0\n"},
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


def test_a_job_whose_requirements_need_the_package_index_fails(cloud) -> None:
    """No job may reach an index at start (a VPC without NAT, network isolation, an index outage)."""
    desc = _run(cloud, "needs-index-job", "needs-index")
    assert desc["TrainingJobStatus"] == "Failed"
    assert "InstallRequirementsError" in desc["FailureReason"]


def test_requirements_that_cannot_be_installed_fail_the_job_with_the_reason(cloud) -> None:
    desc = _run(cloud, "bad-req-job", "bad-req")
    assert desc["TrainingJobStatus"] == "Failed"
    assert "InstallRequirementsError" in desc["FailureReason"]
    assert "ModelArtifacts" not in desc
