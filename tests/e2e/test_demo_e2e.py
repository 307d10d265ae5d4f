"""The whole local flow on a CI-sized dataset, through the demo's own code path, then the CLI
against the still-running local cloud. Real training (the features job once, 4 trials 2 at a time on
its features, the profiled job on the images), real endpoint."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dogclf import contract
from localcloud.demo.main import run_demo
from localcloud.demo.run import DemoSettings
from localcloud.demo.summary import EXIT_OK
from localcloud.environment.containerenv import REPO_ROOT

pytestmark = pytest.mark.slow


def run_cli(state_file: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", "--local", "--state-file", str(state_file), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": "/usr/bin:/bin", "HOME": str(state_file.parent)},
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("e2e") / "state"
    settings = DemoSettings(
        state_dir=state_dir,
        # The demo's own sizes (enough training steps for every Debugger rule to evaluate at least
        # contract.MIN_RULE_STEPS saved steps, so the gate can pass), at half its image size.
        num_classes=4,
        train_per_class=32,
        valid_per_class=4,
        test_per_class=4,
        image_size=32,
        trials=4,
        parallel=2,
        accuracy_threshold=0.4,
        classify_images=2,
        timeout_s=420,
    )
    checks: dict = {}

    def after_run(cloud, result):
        state_file = state_dir / "state.json"
        s3 = cloud.client("s3")
        outputs = cloud.outputs()
        checks["results_in_s3"] = {
            key: json.loads(s3.get_object(Bucket=outputs["InferenceBucketName"], Key=key)["Body"].read())
            for key in result.predictions
        }
        checks["endpoint_status"] = cloud.client("sagemaker").describe_endpoint(
            EndpointName=outputs["EndpointName"]
        )["EndpointStatus"]
        sagemaker = cloud.client("sagemaker")
        checks["features_jobs"] = [
            job["TrainingJobName"]
            for job in sagemaker.list_training_jobs(NameContains=contract.FEATURES_INFIX)[
                "TrainingJobSummaries"
            ]
        ]
        checks["status"] = run_cli(state_file, "status", "--json")
        image = next(state_dir.glob("sample-*.zip"))
        checks["zip"] = image
        checks["classify_boto3"] = run_cli(state_file, "classify", str(extract_test_image(image, state_dir)))
        checks["classify_sdk"] = run_cli(
            state_file, "classify", str(extract_test_image(image, state_dir)), "--via", "sdk", timeout=240
        )
        checks["report"] = run_cli(state_file, "report", "--out", str(state_dir / "reports"))
        checks["teardown"] = run_cli(state_file, "teardown", "--yes")
        checks["endpoints_after_teardown"] = cloud.client("sagemaker").list_endpoints()["Endpoints"]
        # IAM enforced (the default): the calls refused, if any (None: enforcement was off).
        checks["iam_denials"] = [denial.message for denial in cloud.iam.denials] if cloud.iam else None

    result = run_demo(settings, after_run=after_run)
    return result, checks


def extract_test_image(zip_path: Path, into: Path) -> Path:
    import zipfile

    with zipfile.ZipFile(zip_path) as archive:
        name = next(n for n in sorted(archive.namelist()) if "/test/" in n and n.endswith(".jpg"))
        target = into / "probe.jpg"
        target.write_bytes(archive.read(name))
    return target


def test_demo_succeeds_through_events_alone(demo):
    result, _ = demo
    assert result.exit_code == EXIT_OK, result.reason
    counters = result.tuning_job["TrainingJobStatusCounters"]
    # Every trial ran to an end: completed, or stopped early by the median rule (TrainingJobEarlyStoppingType
    # Auto), which may stop the 4th trial once 3 have finished. None failed.
    assert counters["Completed"] + counters["Stopped"] == 4, counters
    assert counters["Completed"] >= 3 and counters["RetryableError"] == counters["NonRetryableError"] == 0
    assert result.tuning_job["BestTrainingJob"]["TunedHyperParameters"]
    assert result.training_job["TrainingJobStatus"] == "Completed"
    metrics = {m["MetricName"] for m in result.training_job["FinalMetricDataList"]}
    assert "test:accuracy" in metrics


def test_the_pipeline_passes_with_iam_enforced_and_no_call_denied(demo):
    _, checks = demo
    assert checks["iam_denials"] == []


def test_features_are_computed_once_and_the_trials_read_only_them(demo):
    result, checks = demo
    assert checks["features_jobs"] == [result.features_job["TrainingJobName"]]  # once per dataset
    assert result.features_job["TrainingJobStatus"] == "Completed"
    [channel] = result.tuning_job["TrainingJobDefinition"]["InputDataConfig"]
    assert channel["ChannelName"] == contract.FEATURES_CHANNEL
    assert (
        channel["DataSource"]["S3DataSource"]["S3Uri"]
        == (result.features_job["ModelArtifacts"]["S3ModelArtifacts"])
    )
    # The profiled job trains the head from the same features; the images feed the Debugger's steps.
    channels = {c["ChannelName"]: c for c in result.training_job["InputDataConfig"]}
    assert set(channels) == {"train", "valid", "test", contract.FEATURES_CHANNEL}
    assert channels[contract.FEATURES_CHANNEL] == channel


def test_gate_decision_is_recorded_and_deployed(demo):
    result, checks = demo
    assert result.decision["deploy"] is True
    assert result.decision["metric_name"] == "test:accuracy"
    assert result.decision["metric_value"] >= 0.4
    assert result.decision["rule_verdicts"], "the gate saw no rule verdicts"
    assert checks["endpoint_status"] == "InService"


def test_result_json_files_are_in_s3(demo):
    result, checks = demo
    assert len(checks["results_in_s3"]) == 2
    for key, document in checks["results_in_s3"].items():
        assert key.startswith("results/") and key.endswith(".json")
        assert document == result.predictions[key]
        assert "error" not in json.dumps(document).lower(), document


def test_profiler_report_and_loss_plot_were_extracted(demo):
    result, _ = demo
    assert Path(result.artifacts["profiler-report.html"]).stat().st_size > 0
    assert Path(result.artifacts["loss.png"]).read_bytes().startswith(b"\x89PNG")


def test_stage_timings_cover_every_stage(demo):
    result, _ = demo
    stages = ("dataset", "ingest", "features", "tuning", "profiled training", "gate", "endpoint", "inference")
    for stage in stages:
        assert stage in result.stage_seconds


def test_cli_against_the_running_local_cloud(demo):
    _, checks = demo
    status = checks["status"]
    assert status.returncode == 0, status.stderr
    document = json.loads(status.stdout)
    assert document["endpoint"]["status"] == "InService"
    assert document["last_decision"]["deploy"] is True
    assert document["training_jobs"][0]["status"] == "Completed"
    assert [job["status"] for job in document["features_jobs"]] == ["Completed"]
    for via in ("classify_boto3", "classify_sdk"):
        completed = checks[via]
        assert completed.returncode == 0, completed.stderr
        assert json.loads(completed.stdout), completed.stdout
    report = checks["report"]
    assert report.returncode == 0, report.stderr
    assert any(line.endswith("profiler-report.html") for line in report.stdout.splitlines())
    assert checks["teardown"].returncode == 0, checks["teardown"].stderr
    assert checks["endpoints_after_teardown"] == []
