"""Training jobs through a real boto3 client against the emulator (real toolkit, real subprocess)."""

from __future__ import annotations

import io
import json
import pathlib
import tarfile
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest

from localcloud.sagemaker.registry import DEBUGGER_ACCESS_ENV
from localcloud.sagemaker.server import SageMakerServer
from tests.support.fixtures import fixture_text
from tests.support.polling import wait_until
from tests.support.sagemaker import EventLog, client, local_s3, tar_gz, training_job_request

pytestmark = pytest.mark.slow  # training jobs through the training toolkit

BUCKET = "jobs"

# A real entry point: reads what the toolkit gives it, prints metric lines, writes model/output files.
TRAIN_SCRIPT = fixture_text("sagemaker/training_train.py")

METRICS = [
    {"Name": "valid:accuracy", "Regex": "#metric valid:accuracy=([-+0-9.eE]+);"},
    {"Name": "valid:loss", "Regex": "#metric valid:loss=([-+0-9.eE]+);"},
]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    events = EventLog()
    with local_s3() as s3_url:
        s3 = client("s3", s3_url)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="code/source.tar.gz", Body=tar_gz({"train.py": TRAIN_SCRIPT}))
        for key in ("data/train/a/1.txt", "data/train/b/2.txt", "data/train2/ignored-prefix-sibling.txt"):
            s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
        # Several tests here send DebuggerMode=builtin's Debugger fields: an account that has Debugger.
        with pytest.MonkeyPatch.context() as env:
            env.setenv(DEBUGGER_ACCESS_ENV, "open")
            server = SageMakerServer(
                state_dir=tmp_path_factory.mktemp("sagemaker"), s3_endpoint_url=s3_url, on_event=events
            ).start()
        try:
            yield {"sm": client("sagemaker", server.url), "s3": s3, "events": events, "server": server}
        finally:
            server.stop()


def request(name: str, **overrides: Any) -> dict[str, Any]:
    hyperparameters = {"learning_rate": "0.25", "epochs": "2"}
    hyperparameters.update(overrides.pop("hyperparameters", {}))
    return training_job_request(
        name,
        BUCKET,
        f"s3://{BUCKET}/code/source.tar.gz",
        hyperparameters=hyperparameters,
        metric_definitions=METRICS,
        channels={"train": f"s3://{BUCKET}/data/train/"},
        **overrides,
    )


def wait_done(sm: Any, name: str) -> dict[str, Any]:
    """boto3's own waiter: succeeds on Completed/Stopped, raises WaiterError on Failed."""
    try:
        sm.get_waiter("training_job_completed_or_stopped").wait(
            TrainingJobName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
    except botocore.exceptions.WaiterError as error:
        assert error.last_response["TrainingJobStatus"] == "Failed"
    return sm.describe_training_job(TrainingJobName=name)


def read_tar_member(s3: Any, uri: str, member: str) -> bytes:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        extracted = tar.extractfile(member)
        assert extracted is not None
        return extracted.read()


def test_completed_job_runs_script_like_the_toolkit_and_uploads_artifacts(cloud: dict[str, Any]) -> None:
    sm, s3 = cloud["sm"], cloud["s3"]
    sm.create_training_job(
        **request(
            "ok-job",
            DebugHookConfig={
                "S3OutputPath": f"s3://{BUCKET}/debug",
                "HookParameters": {"save_interval": "5"},
            },
            DebugRuleConfigurations=[
                {
                    "RuleConfigurationName": "LossNotDecreasing",
                    "RuleEvaluatorImage": "x.dkr.ecr/rules:latest",
                },
                {"RuleConfigurationName": "Overfit", "RuleEvaluatorImage": "x.dkr.ecr/rules:latest"},
            ],
        )
    )
    desc = wait_done(sm, "ok-job")

    assert desc["TrainingJobStatus"] == "Completed"
    assert desc["SecondaryStatus"] == "Completed"
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert metrics == {"valid:accuracy": 0.5, "valid:loss": 0.5}  # last value of each regex wins
    transitions = [t["Status"] for t in desc["SecondaryStatusTransitions"]]
    assert transitions == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert desc["TrainingStartTime"] <= desc["TrainingEndTime"]

    model_uri = desc["ModelArtifacts"]["S3ModelArtifacts"]
    assert model_uri == f"s3://{BUCKET}/output/ok-job/output/model.tar.gz"
    written = json.loads(read_tar_member(s3, model_uri, "model.json"))
    # hyperparameters reach the script as --key value, JSON-decoded; sagemaker_* ones do not
    assert written["argv"] == ["--epochs", "2", "--learning_rate", "0.25"]
    assert written["sm_hps"] == {"epochs": 2, "learning_rate": 0.25}
    assert written["sm_channels"] == ["train"]
    assert written["channel_files"] == ["a/1.txt", "b/2.txt"]  # prefix "data/train/" only
    assert written["job_name"] == "ok-job"
    assert written["debug_config"].endswith("/input/config/debughookconfig.json")
    output_metrics = json.loads(
        read_tar_member(s3, f"s3://{BUCKET}/output/ok-job/output/output.tar.gz", "metrics.json")
    )
    assert output_metrics == {"valid:accuracy": 0.25}

    # Statuses for the configured rules only: the script's Overtraining/ProfilerReport verdicts are not
    # copied in (AWS reports what the request configured).
    rules = {r["RuleConfigurationName"]: r for r in desc["DebugRuleEvaluationStatuses"]}
    assert set(rules) == {"LossNotDecreasing", "Overfit"}
    assert rules["LossNotDecreasing"]["RuleEvaluationStatus"] == "NoIssuesFound"
    assert "in-script verdict for the same rule: loss fell" in rules["LossNotDecreasing"]["StatusDetails"]
    assert rules["Overfit"]["RuleEvaluationStatus"] == "Error"  # no verdict reported: said so, not faked
    assert "ProfilerRuleEvaluationStatuses" not in desc


HOOK_EVERY_STEP = {"save_interval": "1"}
PROFILER_URI = f"s3://{BUCKET}/profiler"


def test_in_script_job_reports_no_rule_statuses_whatever_the_script_wrote(cloud: dict[str, Any]) -> None:
    """DebuggerMode=in-script: no Debugger field at all; the script's own verdicts stay its own."""
    sm = cloud["sm"]
    sm.create_training_job(**request("in-script-job"))
    desc = wait_done(sm, "in-script-job")
    assert desc["TrainingJobStatus"] == "Completed"
    assert "DebugRuleEvaluationStatuses" not in desc
    assert "ProfilerRuleEvaluationStatuses" not in desc
    assert "ProfilingStatus" not in desc


@pytest.mark.parametrize(
    "debugger_field",
    [
        {"DebugHookConfig": {"S3OutputPath": f"s3://{BUCKET}/debug", "HookParameters": HOOK_EVERY_STEP}},
        {"ProfilerConfig": {"DisableProfiler": True}},
        {"TensorBoardOutputConfig": {"S3OutputPath": f"s3://{BUCKET}/tb"}},
        {
            "DebugRuleConfigurations": [
                {"RuleConfigurationName": "Overfit", "RuleEvaluatorImage": "x.dkr.ecr/rules:latest"}
            ]
        },
    ],
)
def test_an_account_without_debugger_access_refuses_any_debugger_field(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, debugger_field: dict[str, Any]
) -> None:
    """The default emulator plays a new account: Debugger closed, AccessDeniedException, no job made."""
    monkeypatch.delenv(DEBUGGER_ACCESS_ENV, raising=False)
    with local_s3() as s3_url, SageMakerServer(state_dir=tmp_path, s3_endpoint_url=s3_url) as server:
        sm = client("sagemaker", server.url)
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            sm.create_training_job(**request("closed-job", **debugger_field))
        assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
        assert next(iter(debugger_field)) in refused.value.response["Error"]["Message"]
        assert sm.list_training_jobs()["TrainingJobSummaries"] == []


def test_builtin_profiler_report_status_is_the_scripts_with_its_findings(cloud: dict[str, Any]) -> None:
    sm = cloud["sm"]
    sm.create_training_job(
        **request(
            "profiled-job",
            ProfilerConfig={"S3OutputPath": PROFILER_URI, "ProfilingIntervalInMilliseconds": 500},
            ProfilerRuleConfigurations=[
                {"RuleConfigurationName": "ProfilerReport", "RuleEvaluatorImage": "x.dkr.ecr/rules:latest"}
            ],
        )
    )
    desc = wait_done(sm, "profiled-job")
    assert "DebugRuleEvaluationStatuses" not in desc
    [report] = desc["ProfilerRuleEvaluationStatuses"]
    assert report["RuleConfigurationName"] == "ProfilerReport"
    assert report["RuleEvaluationStatus"] == "IssuesFound"
    assert "triggered: StepOutlier, CPUBottleneck" in report["StatusDetails"]


def test_failed_job_reports_failure_reason_from_the_toolkit(cloud: dict[str, Any]) -> None:
    sm = cloud["sm"]
    sm.create_training_job(**request("bad-job", hyperparameters={"fail": "true"}))
    desc = wait_done(sm, "bad-job")
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["SecondaryStatus"] == "Failed"
    assert "synthetic failure: the loss diverged" in desc["FailureReason"]
    assert "ModelArtifacts" not in desc
    # Metrics printed before the crash are still recorded, as on SageMaker.
    assert {m["MetricName"] for m in desc["FinalMetricDataList"]} == {"valid:accuracy", "valid:loss"}


def test_missing_channel_data_fails_the_job_with_a_client_error(cloud: dict[str, Any]) -> None:
    sm = cloud["sm"]
    params = request("empty-channel")
    params["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = f"s3://{BUCKET}/nothing-here/"
    sm.create_training_job(**params)
    desc = wait_done(sm, "empty-channel")
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith("ClientError: Data download failed")


def test_stop_training_job_ends_stopped(cloud: dict[str, Any]) -> None:
    sm = cloud["sm"]
    sm.create_training_job(**request("slow-job", hyperparameters={"sleep": "60"}))
    wait_until(
        lambda: sm.describe_training_job(TrainingJobName="slow-job")["SecondaryStatus"],
        lambda status: status == "Training",
        timeout_s=60,
        what="slow-job's SecondaryStatus is Training",
    )
    sm.stop_training_job(TrainingJobName="slow-job")
    desc = wait_done(sm, "slow-job")
    assert desc["TrainingJobStatus"] == "Stopped"
    elapsed = desc["TrainingEndTime"] - desc["TrainingStartTime"]
    assert elapsed.total_seconds() < 40  # the 60 s sleep was cut short
    with pytest.raises(botocore.exceptions.ClientError) as error:
        sm.stop_training_job(TrainingJobName="slow-job")
    assert error.value.response["Error"]["Code"] == "ValidationException"


def test_max_runtime_stops_the_job(cloud: dict[str, Any]) -> None:
    sm = cloud["sm"]
    sm.create_training_job(
        **request(
            "timeout-job", hyperparameters={"sleep": "60"}, StoppingCondition={"MaxRuntimeInSeconds": 3}
        )
    )
    desc = wait_done(sm, "timeout-job")
    assert desc["TrainingJobStatus"] == "Stopped"
    assert desc["SecondaryStatus"] == "MaxRuntimeExceeded"


def test_events_follow_every_status_change_with_describe_shape(cloud: dict[str, Any]) -> None:
    sm, server, events = cloud["sm"], cloud["server"], cloud["events"]
    sm.create_training_job(**request("evented-job", Tags=[{"Key": "team", "Value": "dogs"}]))
    wait_done(sm, "evented-job")
    server.wait_for_events()
    seen = events.of("SageMaker Training Job State Change", "TrainingJobName", "evented-job")
    assert [(e["detail"]["TrainingJobStatus"], e["detail"]["SecondaryStatus"]) for e in seen] == [
        ("InProgress", "Starting"),
        ("InProgress", "Downloading"),
        ("InProgress", "Training"),
        ("InProgress", "Uploading"),
        ("Completed", "Completed"),
    ]
    last = seen[-1]
    assert last["source"] == "aws.sagemaker"
    assert last["detail"]["Tags"] == {"team": "dogs"}
    assert last["account"] == "123456789012"
    assert last["resources"] == [last["detail"]["TrainingJobArn"]]
    assert last["detail"]["ModelArtifacts"]["S3ModelArtifacts"].endswith("/evented-job/output/model.tar.gz")
    assert (
        isinstance(last["detail"]["CreationTime"], int) and last["detail"]["CreationTime"] > 1e12
    )  # epoch ms
    assert {"HyperParameters", "AlgorithmSpecification", "ResourceConfig", "StoppingCondition"} <= set(
        last["detail"]
    )


def test_list_training_jobs_filters_and_sorts(cloud: dict[str, Any]) -> None:
    sm = cloud["sm"]
    sm.create_training_job(**request("list-a"))
    sm.create_training_job(**request("list-b"))
    wait_done(sm, "list-a")
    wait_done(sm, "list-b")
    names = [
        s["TrainingJobName"]
        for s in sm.list_training_jobs(NameContains="list-", SortBy="Name", SortOrder="Ascending")[
            "TrainingJobSummaries"
        ]
    ]
    assert names == ["list-a", "list-b"]
    page = sm.list_training_jobs(NameContains="list-", MaxResults=1)
    assert len(page["TrainingJobSummaries"]) == 1 and "NextToken" in page
