"""The AWS CLI (v1, unmodified) against the local cloud: the user's ``aws`` with the exported endpoints.

``sagemaker list-*/describe-*`` on the jobs the SDK flow's tuner ran, ``s3 cp`` into the datasets
bucket's upload prefix. (``aws logs tail`` reads CloudWatch Logs, which the local cloud does not yet
write yet.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

AWS = Path(sys.executable).with_name("aws")  # the CLI installed next to this interpreter
UPLOADS_PREFIX = "uploads/"  # functions/pipeline/url_import.py UPLOADS_PREFIX


def aws_text(client_env: dict[str, str], *args: str) -> str:
    completed = subprocess.run(
        [str(AWS), *args, "--output", "json"],
        env=client_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def aws(client_env: dict[str, str], *args: str) -> Any:
    return json.loads(aws_text(client_env, *args))


def test_sagemaker_list_and_describe_the_tuning_and_its_trial(client_env: dict[str, str], tuner: Any) -> None:
    name = tuner.latest_tuning_job.name
    listed = aws(client_env, "sagemaker", "list-hyper-parameter-tuning-jobs", "--name-contains", name)
    summaries = listed["HyperParameterTuningJobSummaries"]
    assert [row["HyperParameterTuningJobName"] for row in summaries] == [name]
    flag = "--hyper-parameter-tuning-job-name"
    described = aws(client_env, "sagemaker", "describe-hyper-parameter-tuning-job", flag, name)
    assert described["HyperParameterTuningJobStatus"] == "Completed"
    trials = aws(client_env, "sagemaker", "list-training-jobs-for-hyper-parameter-tuning-job", flag, name)
    [trial] = trials["TrainingJobSummaries"]
    assert trial["TrainingJobName"] == described["BestTrainingJob"]["TrainingJobName"]
    jobs = aws(client_env, "sagemaker", "list-training-jobs", "--name-contains", trial["TrainingJobName"])
    assert [row["TrainingJobStatus"] for row in jobs["TrainingJobSummaries"]] == ["Completed"]
    job = aws(
        client_env, "sagemaker", "describe-training-job", "--training-job-name", trial["TrainingJobName"]
    )
    assert job["TuningJobArn"] == described["HyperParameterTuningJobArn"]
    assert job["OutputDataConfig"]["KmsKeyId"] == ""
    assert job["ModelArtifacts"]["S3ModelArtifacts"].endswith("/output/model.tar.gz")


def test_s3_cp_into_the_upload_prefix(
    client_env: dict[str, str], local_cloud: dict[str, Any], tmp_path: Path
) -> None:
    bucket = local_cloud["outputs"]["DatasetBucketName"]
    note = tmp_path / "notes.txt"
    note.write_text("not a dataset: the pipeline reacts to .zip uploads only\n")
    key = f"{UPLOADS_PREFIX}notes.txt"
    copied = aws_text(client_env, "s3", "cp", str(note), f"s3://{bucket}/{key}")
    assert "upload: " in copied and f" to s3://{bucket}/{key}" in copied, copied
    head = aws(client_env, "s3api", "head-object", "--bucket", bucket, "--key", key)
    assert head["ContentLength"] == note.stat().st_size
