"""Training jobs that bring their own command (AlgorithmSpecification.ContainerEntrypoint and
ContainerArguments, as SDK v3's ModelTrainer sends): run with the job's files at /opt/ml
(localcloud/sagemaker/runners/entrypoint.py), through a real boto3 client against the emulator."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest

from localcloud.sagemaker.server import SageMakerServer
from tests.support.sagemaker import ROLE_ARN, client, local_s3

BUCKET = "own-command"

# What the SDK's sm_train.sh does in small: the platform's files at /opt/ml by absolute path, the
# image's python3 from PATH, a metric line, the model under /opt/ml/model.
OWN_COMMAND = r"""
set -e
python3 - <<'PY'
import json, os, pathlib, sys
ml = pathlib.Path("/opt/ml")
train = ml / "input/data/train"
(ml / "model/seen.json").write_text(json.dumps({
    "hyperparameters": json.loads((ml / "input/config/hyperparameters.json").read_text()),
    "channel_files": sorted(p.name for p in train.iterdir()),
    "python": sys.executable,
}))
print("#metric valid:accuracy=0.75;", flush=True)
PY
"""
FAILING_COMMAND = "echo 'the loss diverged at step 7' > /opt/ml/output/failure; exit 3"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with local_s3() as s3_url:
        s3 = client("s3", s3_url)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="data/train/a.txt", Body=b"x")
        server = SageMakerServer(
            state_dir=tmp_path_factory.mktemp("sagemaker"), s3_endpoint_url=s3_url
        ).start()
        try:
            yield {"sm": client("sagemaker", server.url), "s3": s3, "server": server}
        finally:
            server.stop()


def request(name: str, command: str) -> dict[str, Any]:
    """No sagemaker_submit_directory: the command is the whole job, as with ModelTrainer."""
    return {
        "TrainingJobName": name,
        "HyperParameters": {"learning_rate": "0.25"},
        "AlgorithmSpecification": {
            "TrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6.0-cpu-py312",
            "TrainingInputMode": "File",
            "ContainerEntrypoint": ["/bin/bash"],
            "ContainerArguments": ["-c", command],
            "MetricDefinitions": [{"Name": "valid:accuracy", "Regex": "#metric valid:accuracy=([0-9.]+);"}],
        },
        "RoleArn": ROLE_ARN,
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/data/train/"}
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }


def wait_done(sm: Any, name: str) -> dict[str, Any]:
    try:
        sm.get_waiter("training_job_completed_or_stopped").wait(
            TrainingJobName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
    except botocore.exceptions.WaiterError as error:
        assert error.last_response["TrainingJobStatus"] == "Failed"
    return sm.describe_training_job(TrainingJobName=name)


def test_own_command_sees_the_jobs_files_at_opt_ml(cloud: dict[str, Any]) -> None:
    sm, s3 = cloud["sm"], cloud["s3"]
    sm.create_training_job(**request("own-command-ok", OWN_COMMAND))
    job = wait_done(sm, "own-command-ok")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["FinalMetricDataList"][0]["Value"] == pytest.approx(0.75)
    bucket, key = job["ModelArtifacts"]["S3ModelArtifacts"].removeprefix("s3://").split("/", 1)
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        member = archive.extractfile("seen.json")
        assert member is not None
        seen = json.loads(member.read())
    assert seen["hyperparameters"] == {"learning_rate": "0.25"}
    assert seen["channel_files"] == ["a.txt"]
    # python3 is the image's interpreter (the emulator's training environment), not whatever is on PATH.
    assert seen["python"].startswith(str(cloud["server"].backend.context.training_python.parent))


def test_own_command_failure_file_is_the_failure_reason(cloud: dict[str, Any]) -> None:
    sm = cloud["sm"]
    sm.create_training_job(**request("own-command-fails", FAILING_COMMAND))
    job = wait_done(sm, "own-command-fails")
    assert job["TrainingJobStatus"] == "Failed"
    assert "the loss diverged at step 7" in job["FailureReason"]
