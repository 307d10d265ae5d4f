"""The pipeline with one permission taken away: it fails locally where it would fail on AWS.

A copy of template.yaml loses ``sagemaker:CreateTrainingJob`` from every function role that has it.
The dataset is uploaded as a user would; ingest succeeds, then the first step that creates a job (the
features job, once the dataset is ingested) has its CreateTrainingJob refused with SageMaker's
``AccessDeniedException`` and AWS's message, Lambda retries the event and the on-failure record (the
pipeline's place for errors, docs/contracts.md) carries the error. No job is created.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from localcloud.cloud import LocalCloud, LocalCloudConfig
from localcloud.environment.containerenv import REPO_ROOT
from localcloud.shared import ACCOUNT_ID
from localcloud.stack.template import load_template
from tools.sample_data import write_sample_zip

REMOVED = "sagemaker:CreateTrainingJob"


def _template_without(action: str, root: Path) -> list[str]:
    """Write root/template.yaml without ``action``; the functions that lost it. The code folders it
    names are linked into ``root``, so its relative CodeUri/ContentUri resolve as in the repository."""
    template = load_template(REPO_ROOT / "template.yaml")
    losers = []
    for logical_id, body in template["Resources"].items():
        if body["Type"] != "AWS::Serverless::Function":
            continue
        policies = (body.get("Properties") or {}).get("Policies") or []
        for statement in [s for p in policies if isinstance(p, dict) for s in p.get("Statement", [])]:
            actions = statement.get("Action")
            if isinstance(actions, list) and action in actions:
                actions.remove(action)
                losers.append(logical_id)
    assert losers, f"no function of template.yaml is granted {action}"
    for folder in ("functions", "training"):
        (root / folder).symlink_to(REPO_ROOT / folder, target_is_directory=True)
    (root / "template.yaml").write_text(yaml.safe_dump(template, sort_keys=False))
    return losers


@pytest.fixture(scope="module")
def cloud_and_losers(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("iam-pipeline")
    losers = _template_without(REMOVED, root)
    config = LocalCloudConfig(
        template=root / "template.yaml",
        state_dir=root / "state",
        retry_delays_s=(0.05,),
        parameter_overrides={"LogLevel": "WARNING"},
        schedule_period_s=0,
        iam=True,
    )
    with LocalCloud(config) as running:
        yield running, losers


def test_a_removed_permission_fails_the_step_that_needs_it_with_access_denied(
    cloud_and_losers: tuple[LocalCloud, list[str]], tmp_path: Path
) -> None:
    cloud, losers = cloud_and_losers
    assert cloud.runner is not None and cloud.resolver is not None
    archive = write_sample_zip(
        tmp_path / "dogs.zip",
        num_classes=2,
        train_per_class=3,
        valid_per_class=1,
        test_per_class=1,
        image_size=32,
    )
    cloud.client("s3").upload_file(str(archive), cloud.outputs()["DatasetBucketName"], "uploads/dogs.zip")
    assert cloud.wait_s3_events_delivered(timeout_s=300)

    # One event failed, in a function that lost the permission: the step that starts the features job.
    assert len(cloud.runner.failed_async) == 1, cloud.runner.failed_async
    record = cloud.runner.failed_async[0]
    function = cloud.runner.function(record["requestContext"]["functionArn"].rsplit(":", 1)[0])
    assert function.logical_id in losers
    role = str(cloud.resolver.resources[function.logical_id].properties["Role"]).rsplit("/", 1)[-1]
    message = record["responsePayload"]["errorMessage"]
    assert (
        "An error occurred (AccessDeniedException) when calling the CreateTrainingJob operation: " in message
    )
    assert (
        f"User: arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role}/{function.name} is not authorized to perform: "
        f"{REMOVED} on resource: arn:aws:sagemaker:us-east-1:{ACCOUNT_ID}:training-job/"
    ) in message
    assert message.endswith(f"because no identity-based policy allows the {REMOVED} action")
    # Every attempt was refused before SageMaker acted: no job exists.
    assert cloud.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []
    # The record is in the failure queue, where `cli redrive` finds it.
    queue = cloud.outputs()["FailedEventsQueueUrl"]
    messages = cloud.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    payloads = [json.loads(m["Body"]).get("responsePayload") for m in messages]
    assert [p["errorMessage"] for p in payloads] == [message]
