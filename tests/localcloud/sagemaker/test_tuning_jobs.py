"""Hyperparameter tuning through boto3: real searches whose trials are real training jobs."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from localcloud.sagemaker.search import BayesianSearch, RandomSearch
from localcloud.sagemaker.server import SageMakerServer
from tests.support.fixtures import fixture_text
from tests.support.polling import wait_until
from tests.support.sagemaker import ROLE_ARN, EventLog, client, local_s3, tar_gz

pytestmark = pytest.mark.slow  # trials through the training toolkit

BUCKET = "tuning"

# Objective = a known function of the hyperparameters, so the best trial is checkable. Each trial
# drops a marker in a shared folder and holds until a second trial is running too (or `hold` runs
# out), sampling how many markers exist: the peak and the start/end stamps come back as metrics, so
# the test measures how many trials really ran at once.
TRIAL_SCRIPT = fixture_text("sagemaker/tuning_trial.py")

RANGES = {
    "ContinuousParameterRanges": [
        {"Name": "learning_rate", "MinValue": "0.0001", "MaxValue": "0.1", "ScalingType": "Logarithmic"}
    ],
    "IntegerParameterRanges": [
        {"Name": "batch_size", "MinValue": "8", "MaxValue": "64", "ScalingType": "Linear"}
    ],
    "CategoricalParameterRanges": [{"Name": "optimizer", "Values": ["sgd", "adam"]}],
}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    events = EventLog()
    with local_s3() as s3_url:
        s3 = client("s3", s3_url)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="code/source.tar.gz", Body=tar_gz({"trial.py": TRIAL_SCRIPT}))
        # The global cap is above MaxParallelTrainingJobs, so only the tuner's limit can bind.
        server = SageMakerServer(
            state_dir=tmp_path_factory.mktemp("sagemaker"),
            s3_endpoint_url=s3_url,
            on_event=events,
            max_concurrent_jobs=3,
        ).start()
        try:
            yield {"sm": client("sagemaker", server.url), "events": events, "server": server}
        finally:
            server.stop()


def tuning_request(
    name: str,
    strategy: str,
    objective_type: str,
    max_jobs: int,
    max_parallel: int,
    static: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": strategy,
            "HyperParameterTuningJobObjective": {"Type": objective_type, "MetricName": "score"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": max_jobs, "MaxParallelTrainingJobs": max_parallel},
            "ParameterRanges": RANGES,
            "RandomSeed": 7,
            "TrainingJobEarlyStoppingType": "Off",
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": {
                "sagemaker_submit_directory": f'"s3://{BUCKET}/code/source.tar.gz"',
                "sagemaker_program": '"trial.py"',
                **(static or {}),
            },
            "AlgorithmSpecification": {
                "TrainingImage": "pytorch-training:local",
                "TrainingInputMode": "File",
                "MetricDefinitions": [
                    {"Name": "score", "Regex": "#metric score=([-+0-9.eE]+);"},
                    {"Name": "t:start", "Regex": "#metric t:start=([0-9.eE+]+);"},
                    {"Name": "t:end", "Regex": "#metric t:end=([0-9.eE+]+);"},
                    {"Name": "peak", "Regex": "#metric peak=([0-9]+);"},
                ],
            },
            "RoleArn": ROLE_ARN,
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
            "StoppingCondition": {"MaxRuntimeInSeconds": 300},
        },
    }


def wait_tuning(sm: Any, name: str, timeout: float = 240) -> dict[str, Any]:
    desc: dict[str, Any] = wait_until(
        lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
        lambda d: d["HyperParameterTuningJobStatus"] in ("Completed", "Failed", "Stopped"),
        timeout_s=timeout,
        interval_s=0.2,
        what=f"tuning job {name} ended",
    )
    return desc


def trials(sm: Any, name: str) -> list[dict[str, Any]]:
    return sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, MaxResults=100
    )["TrainingJobSummaries"]


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = best = 0
    for _, step in points:
        running += step
        best = max(best, running)
    return best


@pytest.mark.parametrize(("strategy", "objective_type"), [("Random", "Maximize"), ("Bayesian", "Minimize")])
def test_tuning_honours_limits_ranges_and_objective(
    cloud: dict[str, Any], strategy: str, objective_type: str, tmp_path: Path
) -> None:
    sm = cloud["sm"]
    name = f"tune-{strategy.lower()}"
    static = {"rendezvous": json.dumps(str(tmp_path)), "hold": "8"}
    sm.create_hyper_parameter_tuning_job(
        **tuning_request(name, strategy, objective_type, max_jobs=4, max_parallel=2, static=static)
    )
    desc = wait_tuning(sm, name)

    assert desc["HyperParameterTuningJobStatus"] == "Completed"
    summaries = trials(sm, name)
    assert len(summaries) == 4  # MaxNumberOfTrainingJobs, no more
    assert desc["TrainingJobStatusCounters"]["Completed"] == 4
    assert desc["ObjectiveStatusCounters"]["Succeeded"] == 4
    for summary in summaries:
        assert re.fullmatch(rf"{name}-\d{{3}}-[0-9a-f]{{8}}", summary["TrainingJobName"])
        tuned = summary["TunedHyperParameters"]
        assert 0.0001 <= float(tuned["learning_rate"]) <= 0.1
        assert 8 <= int(tuned["batch_size"]) <= 64 and tuned["batch_size"] == str(int(tuned["batch_size"]))
        assert tuned["optimizer"] in ("sgd", "adam")

    # Observed concurrency, from the trials' own start/end stamps.
    intervals, peaks = [], []
    for summary in summaries:
        job = sm.describe_training_job(TrainingJobName=summary["TrainingJobName"])
        assert job["TuningJobArn"] == desc["HyperParameterTuningJobArn"]
        assert job["HyperParameters"]["_tuning_objective_metric"] == '"score"'
        metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
        intervals.append((metrics["t:start"], metrics["t:end"]))
        peaks.append(metrics["peak"])
    assert max_overlap(intervals) == 2  # two at once, never three (the global cap is 3)
    assert max(peaks) == 2

    # The best trial is the extreme of the objective the trials reported, and it is consistent.
    values = {
        s["TrainingJobName"]: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in summaries
    }
    pick = max if objective_type == "Maximize" else min
    best = desc["BestTrainingJob"]
    assert best["TrainingJobName"] == pick(values, key=values.__getitem__)
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == pick(values.values())
    tuned = best["TunedHyperParameters"]
    expected = (
        -abs(math.log10(float(tuned["learning_rate"])) + 2)
        + int(tuned["batch_size"]) / 1000
        + (0.01 if tuned["optimizer"] == "adam" else 0)
    )
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == pytest.approx(expected)

    ordered = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, SortBy="FinalObjectiveMetricValue", SortOrder="Descending"
    )["TrainingJobSummaries"]
    scores = [s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in ordered]
    assert scores == sorted(scores, reverse=True)


def test_tuning_fails_when_every_trial_fails(cloud: dict[str, Any]) -> None:
    sm = cloud["sm"]
    request = tuning_request("tune-broken", "Random", "Maximize", 2, 2, static={"fail": "true", "hold": "0"})
    sm.create_hyper_parameter_tuning_job(**request)
    desc = wait_tuning(sm, "tune-broken")
    assert desc["HyperParameterTuningJobStatus"] == "Failed"
    assert "All training jobs failed" in desc["FailureReason"]
    assert desc["TrainingJobStatusCounters"]["NonRetryableError"] == 2
    assert "BestTrainingJob" not in desc
    for summary in trials(sm, "tune-broken"):
        assert "trial failed on purpose" in summary["FailureReason"]


def test_stop_tuning_job_stops_running_trials(cloud: dict[str, Any]) -> None:
    sm = cloud["sm"]
    sm.create_hyper_parameter_tuning_job(
        **tuning_request("tune-stop", "Random", "Maximize", 4, 2, static={"hold": "60"})
    )
    wait_until(lambda: trials(sm, "tune-stop"), lambda seen: len(seen) >= 2, timeout_s=60, what="two trials")
    sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-stop")
    desc = wait_tuning(sm, "tune-stop", timeout=60)
    assert desc["HyperParameterTuningJobStatus"] == "Stopped"
    assert {s["TrainingJobStatus"] for s in trials(sm, "tune-stop")} == {"Stopped"}
    assert len(trials(sm, "tune-stop")) == 2  # nothing launched after the stop


def test_tuning_events_on_each_status_change(cloud: dict[str, Any]) -> None:
    sm, events, server = cloud["sm"], cloud["events"], cloud["server"]
    sm.create_hyper_parameter_tuning_job(
        **tuning_request("tune-events", "Random", "Maximize", 1, 1, static={"hold": "0"})
    )
    wait_tuning(sm, "tune-events")
    server.wait_for_events()
    seen = events.of(
        "SageMaker HyperParameter Tuning Job State Change", "HyperParameterTuningJobName", "tune-events"
    )
    assert [e["detail"]["HyperParameterTuningJobStatus"] for e in seen] == ["InProgress", "Completed"]
    detail = seen[-1]["detail"]
    assert detail["BestTrainingJob"]["TrainingJobName"].startswith("tune-events-001-")
    assert {"TrainingJobDefinition", "HyperParameterTuningJobConfig", "TrainingJobStatusCounters"} <= set(
        detail
    )
    assert seen[-1]["resources"] == [detail["HyperParameterTuningJobArn"]]


def test_invalid_tuning_requests_are_rejected(cloud: dict[str, Any]) -> None:
    sm = cloud["sm"]
    bad_metric = tuning_request("tune-bad1", "Random", "Maximize", 2, 1)
    bad_metric["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"] = "nope"
    bad_log = tuning_request("tune-bad2", "Random", "Maximize", 2, 1)
    bad_log["HyperParameterTuningJobConfig"]["ParameterRanges"] = {
        "ContinuousParameterRanges": [
            {"Name": "learning_rate", "MinValue": "0", "MaxValue": "1", "ScalingType": "Logarithmic"}
        ]
    }
    for request in (bad_metric, bad_log):
        with pytest.raises(botocore.exceptions.ClientError) as error:
            sm.create_hyper_parameter_tuning_job(**request)
        assert error.value.response["Error"]["Code"] == "ValidationException"
    too_parallel = tuning_request("tune-bad3", "Random", "Maximize", 200, 100)
    with pytest.raises(sm.exceptions.ResourceLimitExceeded):
        sm.create_hyper_parameter_tuning_job(**too_parallel)
    with pytest.raises(sm.exceptions.ResourceNotFound):
        sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="no-such-tuning-job")


def test_logarithmic_scaling_samples_uniformly_in_log_space() -> None:
    ranges = {
        "ContinuousParameterRanges": [
            {"Name": "lr", "MinValue": "0.0001", "MaxValue": "1", "ScalingType": "Logarithmic"}
        ]
    }
    linear = {
        "ContinuousParameterRanges": [
            {"Name": "lr", "MinValue": "0.0001", "MaxValue": "1", "ScalingType": "Linear"}
        ]
    }
    log_values = [float(RandomSearch(ranges, seed).suggest()[1]["lr"]) for seed in range(2000)]
    linear_values = [float(RandomSearch(linear, seed).suggest()[1]["lr"]) for seed in range(2000)]
    # Below the geometric midpoint 0.01: half the samples on a log scale, ~1% on a linear one.
    assert 0.45 < sum(v < 0.01 for v in log_values) / 2000 < 0.55
    assert sum(v < 0.01 for v in linear_values) / 2000 < 0.03
    assert all(0.0001 <= v <= 1 for v in log_values + linear_values)


def test_reverse_log_and_bayesian_sampler_respect_bounds() -> None:
    ranges = {
        "ContinuousParameterRanges": [
            {"Name": "momentum", "MinValue": "0.5", "MaxValue": "0.999", "ScalingType": "ReverseLogarithmic"}
        ],
        "IntegerParameterRanges": [
            {"Name": "width", "MinValue": "1", "MaxValue": "1024", "ScalingType": "Logarithmic"}
        ],
    }
    search = RandomSearch(ranges, 3)
    samples = [search.suggest()[1] for _ in range(1000)]
    momenta = [float(s["momentum"]) for s in samples]
    widths = [int(s["width"]) for s in samples]
    assert all(0.5 <= m <= 0.999 for m in momenta) and all(1 <= w <= 1024 for w in widths)
    assert sum(m > 0.95 for m in momenta) / 1000 > 0.4  # dense near 1, unlike linear (~10%)
    assert sum(w <= 32 for w in widths) / 1000 == pytest.approx(0.5, abs=0.06)

    bayes = BayesianSearch(ranges, seed=1, direction="Maximize", max_jobs=12)
    for _ in range(12):
        handle, values = bayes.suggest()
        assert 0.5 <= float(values["momentum"]) <= 0.999 and 1 <= int(values["width"]) <= 1024
        bayes.report(handle, -abs(math.log2(int(values["width"])) - 5))
    assert len(bayes.study.trials) == 12


def test_grid_search_enumerates_categorical_combinations_once() -> None:
    from localcloud.sagemaker.exceptions import ValidationException
    from localcloud.sagemaker.search import GridSearch, validate_tuning_config

    ranges = {
        "CategoricalParameterRanges": [
            {"Name": "optimizer", "Values": ["sgd", "adam"]},
            {"Name": "augment", "Values": ["true", "false", "auto"]},
        ]
    }
    grid = GridSearch(ranges)
    assert grid.capacity() == 6
    points = [grid.suggest()[1] for _ in range(6)]
    assert len({tuple(sorted(p.items())) for p in points}) == 6
    definition = tuning_request("g", "Grid", "Maximize", 1, 1)["TrainingJobDefinition"]
    with pytest.raises(ValidationException, match="only CategoricalParameterRanges"):
        validate_tuning_config(
            {"Strategy": "Grid", "ParameterRanges": RANGES, "ResourceLimits": {}}, definition
        )
