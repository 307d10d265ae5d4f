"""The emulator's side of a wider search: the median stopping rule (TrainingJobEarlyStoppingType Auto)
stops a trial that reports worse than the earlier trials at the same epoch, and managed spot runs
on-demand with its CheckpointConfig synced both ways. Trials are real training jobs (the toolkit)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest

from localcloud.sagemaker.search import median_rule_stops
from localcloud.sagemaker.server import SageMakerServer
from tests.support.fixtures import fixture_text
from tests.support.polling import wait_until
from tests.support.sagemaker import ROLE_ARN, client, local_s3, tar_gz

pytestmark = pytest.mark.slow  # trials through the training toolkit

BUCKET = "search"

# One objective report per epoch, far enough apart for the tuner's poll to see each one. The
# checkpoint folder is the one CheckpointConfig.LocalPath maps to; a file seeded in S3 must be there.
TRIAL_SCRIPT = fixture_text("sagemaker/search_trial.py")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with local_s3() as s3_url:
        s3 = client("s3", s3_url)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="code/source.tar.gz", Body=tar_gz({"trial.py": TRIAL_SCRIPT}))
        server = SageMakerServer(
            state_dir=tmp_path_factory.mktemp("sagemaker"), s3_endpoint_url=s3_url, max_concurrent_jobs=2
        ).start()
        try:
            yield {"sm": client("sagemaker", server.url), "s3": s3}
        finally:
            server.stop()


def request(name: str, early_stopping: str, **definition: Any) -> dict[str, Any]:
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Grid",  # trials in the order of the values: three good ones, then a bad one
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "acc"},
            "ResourceLimits": {"MaxParallelTrainingJobs": 1},
            "ParameterRanges": {"CategoricalParameterRanges": [{"Name": "quality", "Values": QUALITIES}]},
            "TrainingJobEarlyStoppingType": early_stopping,
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": {
                "sagemaker_submit_directory": f'"s3://{BUCKET}/code/source.tar.gz"',
                "sagemaker_program": '"trial.py"',
            },
            "AlgorithmSpecification": {
                "TrainingImage": "pytorch-training:local",
                "TrainingInputMode": "File",
                "MetricDefinitions": [
                    {"Name": "acc", "Regex": "acc=([-+0-9.eE]+);"},
                    {"Name": "epoch", "Regex": "#metric epoch=([0-9]+);"},
                    {"Name": "seeded", "Regex": "#metric seeded=([0-9]);"},
                ],
            },
            "RoleArn": ROLE_ARN,
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
            "StoppingCondition": {"MaxRuntimeInSeconds": 300},
            **definition,
        },
    }


QUALITIES = ["0.9", "0.91", "0.92", "0.1"]


def run_tuning(sm: Any, body: dict[str, Any], timeout: float = 240) -> dict[str, dict[str, Any]]:
    """Create, wait for the end; {quality: {"status", "epochs", "seeded"}} per trial."""
    name = body["HyperParameterTuningJobName"]
    sm.create_hyper_parameter_tuning_job(**body)
    wait_until(
        lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
        lambda d: d["HyperParameterTuningJobStatus"] in ("Completed", "Failed", "Stopped"),
        timeout_s=timeout,
        interval_s=0.2,
        what=f"tuning job {name} ended",
    )
    trials = {}
    summaries = sm.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    for summary in summaries["TrainingJobSummaries"]:
        job = sm.describe_training_job(TrainingJobName=summary["TrainingJobName"])
        metrics = {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])}
        trials[summary["TunedHyperParameters"]["quality"]] = {
            "status": job["TrainingJobStatus"],
            "epochs": metrics.get("epoch"),
            "seeded": metrics.get("seeded"),
            "name": job["TrainingJobName"],
            "spot": job.get("EnableManagedSpotTraining"),
        }
    return trials


def test_median_rule() -> None:
    finished = [[0.5, 0.6, 0.7], [0.4, 0.5, 0.6], [0.9, 0.9, 0.9]]  # running averages at step 2: .55 .45 .9
    assert median_rule_stops(0.54, 2, finished, maximize=True)  # median .55
    assert not median_rule_stops(0.56, 2, finished, maximize=True)
    assert median_rule_stops(0.56, 2, finished, maximize=False)
    assert not median_rule_stops(0.1, 2, finished[:2], maximize=True)  # too few finished trials
    assert not median_rule_stops(0.1, 4, finished, maximize=True)  # none of them reached step 4


def test_without_early_stopping_every_trial_runs_to_its_end(cloud: dict[str, Any]) -> None:
    trials = run_tuning(cloud["sm"], request("search-off", "Off"))
    assert {q: (t["status"], t["epochs"]) for q, t in trials.items()} == {
        q: ("Completed", 4.0) for q in QUALITIES
    }


def test_auto_early_stopping_stops_the_bad_trial_and_spot_syncs_checkpoints(cloud: dict[str, Any]) -> None:
    sm, s3 = cloud["sm"], cloud["s3"]
    s3.put_object(Bucket=BUCKET, Key="checkpoints/search-auto/seed.txt", Body=b"from an earlier attempt")
    spot = {
        "EnableManagedSpotTraining": True,
        "StoppingCondition": {"MaxRuntimeInSeconds": 300, "MaxWaitTimeInSeconds": 600},
        "CheckpointConfig": {
            "S3Uri": f"s3://{BUCKET}/checkpoints/search-auto/",
            "LocalPath": "/opt/ml/checkpoints",
        },
    }
    trials = run_tuning(sm, request("search-auto", "Auto", **spot))

    assert {q: trials[q]["status"] for q in QUALITIES} == {
        "0.9": "Completed",
        "0.91": "Completed",
        "0.92": "Completed",
        "0.1": "Stopped",
    }
    assert trials["0.1"]["epochs"] < 4  # stopped after its first reports, not at its end
    assert all(t["spot"] is True and t["seeded"] == 1.0 for t in trials.values())
    keys = {
        o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="checkpoints/search-auto/")["Contents"]
    }
    assert keys == {"checkpoints/search-auto/seed.txt"} | {
        f"checkpoints/search-auto/{t['name']}.ckpt" for t in trials.values()
    }
    desc = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="search-auto")
    assert desc["HyperParameterTuningJobStatus"] == "Completed"
    assert desc["BestTrainingJob"]["TunedHyperParameters"] == {"quality": "0.92"}


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (
            {"EnableManagedSpotTraining": True, "StoppingCondition": {"MaxRuntimeInSeconds": 300}},
            "MaxWaitTimeInSeconds",
        ),
        (
            {
                "EnableManagedSpotTraining": True,
                "StoppingCondition": {"MaxRuntimeInSeconds": 300, "MaxWaitTimeInSeconds": 299},
            },
            "greater than or equal to MaxRuntimeInSeconds",
        ),
        (
            {"StoppingCondition": {"MaxRuntimeInSeconds": 300, "MaxWaitTimeInSeconds": 600}},
            "only valid with EnableManagedSpotTraining",
        ),
    ],
)
def test_bad_spot_settings_are_rejected(cloud: dict[str, Any], definition: dict, message: str) -> None:
    with pytest.raises(botocore.exceptions.ClientError, match=message) as raised:
        cloud["sm"].create_hyper_parameter_tuning_job(**request("search-bad", "Auto", **definition))
    assert raised.value.response["Error"]["Code"] == "ValidationException"


def test_unknown_early_stopping_type_is_rejected(cloud: dict[str, Any]) -> None:
    with pytest.raises(botocore.exceptions.ClientError, match=r"\[Off, Auto\]"):
        cloud["sm"].create_hyper_parameter_tuning_job(**request("search-bad2", "Sometimes"))
