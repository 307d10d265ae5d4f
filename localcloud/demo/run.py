"""The demo's run: the sample dataset, and the watcher that follows the pipeline stage by stage.

After the upload the demo only watches: each stage waits on what the pipeline's own events produced
(the features job, the tuning job, the profiled training job, the gate's decision, the endpoint, the
result JSONs) and fails fast on any failure signal (a Lambda that exhausted its retries, a failed
job, a failure notification).
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dogclf import contract
from localcloud.cloud import LocalCloud
from localcloud.demo.summary import (
    EXIT_GATE_REJECTED,
    EXIT_OK,
    EXIT_PIPELINE_FAILED,
    EXIT_TIMEOUT,
    FAILURE_SUBJECTS,
    DemoResult,
    PipelineFailedError,
    Progress,
)
from localcloud.environment.containerenv import REPO_ROOT

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


# The epochs the tuner searches for a --data archive: a real dataset has hundreds of steps per epoch
# (dogImages: 208 at batch 32), far above the rules' minimum the sample's 5-6 epochs exist for.
DATA_EPOCHS = "2,3"


@dataclass
class DemoSettings:
    data: Path | None = None
    state_dir: Path = REPO_ROOT / ".localcloud"
    template: Path = REPO_ROOT / "template.yaml"
    stack_name: str = "dogbreed-local"
    num_classes: int = 4
    train_per_class: int = 32
    valid_per_class: int = 6
    test_per_class: int = 6
    image_size: int = 64
    trials: int = 4
    parallel: int = 2
    # Worst case 4 x 32 / 32 x 5 = 20 training steps: the Debugger rules' minimum (contract.MIN_RULE_STEPS);
    # batches of 16+ keep single-batch losses from swamping the trend the loss rules read.
    epochs: str = "5,6"  # the built-in sample's; parse_args picks DATA_EPOCHS for --data
    batch_sizes: str = "16,32"
    # Adam above ~0.02 overshoots in the first steps on this data (loss x5 at step 1), which
    # PoorWeightInitialization (blocking) reads as "loss did not decrease within 5 steps".
    learning_rates: str = "0.001,0.01"
    accuracy_threshold: float = 0.5
    augment: bool = False  # AugmentTrials: no features stage, trials train from the images
    classify_images: int = 3
    timeout_s: float = 600.0
    keep_running: bool = False
    verbose: bool = False
    extra_parameters: dict[str, str] = field(default_factory=dict)
    # PretrainedWeights: "imagenet" or "none"; the demo's --weights auto|imagenet|none is resolved to
    # one of them before the cloud starts (localcloud.demo.weights). Random init unless asked: offline, and
    # what the e2e tests and benches expect.
    weights: str = "none"

    def parameter_overrides(self) -> dict[str, str]:
        overrides = {
            "PretrainedWeights": self.weights,
            "ImageSize": str(self.image_size),
            "MaxTuningJobs": str(self.trials),
            "MaxParallelTuningJobs": str(self.parallel),
            "EpochsRange": self.epochs,
            "BatchSizeValues": self.batch_sizes,
            "LearningRateRange": self.learning_rates,
            "AccuracyThreshold": str(self.accuracy_threshold),
            "AugmentTrials": "true" if self.augment else "false",
            "LogLevel": "WARNING",
            "UrlImportAllowLoopbackHttp": "true",  # `cli --local import-url http://127.0.0.1:PORT/x.zip`
        }
        overrides.update(self.extra_parameters)
        return overrides


# -- dataset ----------------------------------------------------------------------------------------
def build_sample_zip(settings: DemoSettings, path: Path) -> Path:
    """The training engineer's generator (stdlib + Pillow), run as a subprocess like a user would."""
    command = [
        sys.executable,
        "-m",
        "tools.sample_data",
        "--out",
        str(path),
        "--num-classes",
        str(settings.num_classes),
        "--train-per-class",
        str(settings.train_per_class),
        "--valid-per-class",
        str(settings.valid_per_class),
        "--test-per-class",
        str(settings.test_per_class),
        "--image-size",
        str(settings.image_size),
    ]
    env = {"PATH": "/usr/bin:/bin"}  # tools and dogclf: this interpreter's editable installs
    subprocess.run(command, check=True, env=env, timeout=300, capture_output=True)
    return path


def test_images_from_zip(zip_path: Path, count: int) -> list[tuple[str, bytes]]:
    """A few images of the test split, from different classes where possible."""
    with zipfile.ZipFile(zip_path) as archive:
        names = [n for n in archive.namelist() if "/test/" in f"/{n}" and n.lower().endswith(IMAGE_SUFFIXES)]
        by_class: dict[str, list[str]] = {}
        for name in sorted(names):
            by_class.setdefault(name.split("/")[-2], []).append(name)
        chosen: list[str] = []
        while len(chosen) < count and any(by_class.values()):
            for members in by_class.values():
                if members and len(chosen) < count:
                    chosen.append(members.pop(0))
        return [(f"{n.split('/')[-2]}/{n.split('/')[-1]}", archive.read(n)) for n in chosen]


# -- the run ----------------------------------------------------------------------------------------
class DemoRun:
    def __init__(self, settings: DemoSettings, cloud: LocalCloud, progress: Progress) -> None:
        self.settings = settings
        self.cloud = cloud
        self.progress = progress
        self.deadline = progress.started + settings.timeout_s
        self.outputs = cloud.outputs()
        self.prefix = cloud.resolver.parameters.get("JobNamePrefix", "") if cloud.resolver else ""
        self.result = DemoResult(exit_code=EXIT_OK)
        self.sm = cloud.client("sagemaker")
        self.s3 = cloud.client("s3")
        self._seen_notifications = 0

    # each check raises PipelineFailedError on a failure signal and returns a value when the stage is done
    def wait(self, what: str, check: Any, poll_s: float = 1.0) -> Any:
        while True:
            self.check_failures()
            value = check()
            if value:
                return value
            if time.monotonic() > self.deadline:
                raise PipelineFailedError(
                    f"timed out after {self.settings.timeout_s:.0f}s waiting for {what}; "
                    f"logs: {self.cloud.state_dir / 'logs'}",
                    EXIT_TIMEOUT,
                )
            time.sleep(poll_s)

    def check_failures(self) -> None:
        runner = self.cloud.runner
        assert runner is not None
        for note in self.cloud.read_notifications():
            self.result.notifications.append(note)
            self.progress.say(f"notification: {note['subject']}")
            if any(word in note["subject"].lower() for word in FAILURE_SUBJECTS):
                exit_code = EXIT_PIPELINE_FAILED
                if "not deployed" in note["subject"].lower():
                    exit_code = EXIT_GATE_REJECTED
                    with contextlib.suppress(ValueError):  # the message is the decision document
                        self.result.decision = json.loads(note["message"])
                raise PipelineFailedError(f"{note['subject']}\n{note['message']}", exit_code)
        if runner.failed_async:
            record = runner.failed_async[0]
            function = record["requestContext"]["functionArn"].split(":")[6]
            payload = record["responsePayload"] or {}
            attempts = record["requestContext"]["approximateInvokeCount"]
            raise PipelineFailedError(
                f"Lambda {function} failed after {attempts} attempts: "
                f"{payload.get('errorType')}: {payload.get('errorMessage')} "
                f"(log: {self.cloud.state_dir / 'logs' / (function + '.log')})"
            )

    def ingest_subscription(self) -> tuple[str, str]:
        for sub in self.cloud.s3_subscriptions:
            rules = {r["Name"]: r["Value"] for r in sub.filter_rules}
            if rules.get("suffix", "").lower() == ".zip":
                return sub.bucket, rules.get("prefix", "")
        raise PipelineFailedError("template.yaml has no function triggered by a .zip upload")

    def inference_subscription(self) -> tuple[str, str]:
        for sub in self.cloud.s3_subscriptions:
            rules = {r["Name"]: r["Value"] for r in sub.filter_rules}
            # Classify's filter is prefix-only (S3 suffixes are case-sensitive; it checks them itself).
            if "suffix" not in rules or rules["suffix"].lower() in IMAGE_SUFFIXES:
                return sub.bucket, rules.get("prefix", "")
        raise PipelineFailedError("template.yaml has no function triggered by image uploads")

    def run(self, zip_path: Path) -> DemoResult:
        progress = self.progress
        bucket, prefix = self.ingest_subscription()
        progress.stage("upload")
        key = f"{prefix}{zip_path.name}"
        self.s3.upload_file(str(zip_path), bucket, key)
        progress.say(
            f"uploaded {zip_path.name} ({zip_path.stat().st_size / 1e6:.1f} MB) to s3://{bucket}/{key}"
        )

        progress.stage("ingest")
        kind, name = self.wait("the features or tuning job to start (ingest, dataset ready)", self._first_job)
        if kind == "features":
            self._features_stage(name)
            name = self.wait("the tuning job to start (features-completed)", self._tuning_job_name)
        # else AugmentTrials=true (the trials read the images): no features stage
        tuning_name = name
        progress.say(f"tuning job {tuning_name} started")

        self._tuning_stage(tuning_name)

        progress.stage("profiled training")
        job_name = self.wait("the profiled training job to start", self._training_job_name)
        progress.say(f"profiled training job {job_name} started")
        job = self.wait("the profiled training job to finish", lambda: self._job_done(job_name), poll_s=2.0)
        self.result.training_job = job
        metrics = {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])}
        progress.say(f"training {job['TrainingJobStatus']}: {json.dumps(metrics)}")

        progress.stage("gate")
        decision = self.wait("the gate decision", lambda: self._decision(job_name))
        self.result.decision = decision
        verdict = "deploy" if decision.get("deploy") else "reject"
        progress.say(f"gate: {verdict} ({'; '.join(decision.get('reasons', [])) or 'all checks passed'})")
        self._collect_artifacts(job)
        if not decision.get("deploy"):
            raise PipelineFailedError(
                f"the gate rejected {job_name}: {decision.get('reasons')}", EXIT_GATE_REJECTED
            )

        progress.stage("endpoint")
        endpoint_name = self.outputs.get("EndpointName") or decision.get("endpoint_name", "")
        # The run ends on the outcome the endpoint's own state event recorded in the decision
        # ("Model InService: <job>"), not on the deploy request.
        self.result.endpoint = self.wait(
            "the endpoint to be InService on the model", lambda: self._endpoint(endpoint_name, job_name)
        )
        outcome = self.result.decision.get("endpoint_outcome", {})
        progress.say(f"endpoint {endpoint_name}: {outcome.get('message', 'InService')}")

        progress.stage("inference")
        self._classify(zip_path)
        progress.finish()
        return self.result

    def _features_stage(self, name: str) -> None:
        self.progress.say(f"features job {name} started")
        self.progress.stage("features")
        job = self.wait("the features job to finish", lambda: self._job_done(name, "features"))
        self.result.features_job = job
        self.progress.say(f"features {job['TrainingJobStatus']}: {job['ModelArtifacts']['S3ModelArtifacts']}")

    def _tuning_stage(self, tuning_name: str) -> None:
        self.progress.stage("tuning")
        tuning = self.wait("the tuning job to finish", lambda: self._tuning_done(tuning_name), poll_s=2.0)
        best = tuning.get("BestTrainingJob", {})
        if best and not best.get("TunedHyperParameters"):
            # Fall back to the best trial's own hyperparameters, without the toolkit's keys.
            trial = self.sm.describe_training_job(TrainingJobName=best["TrainingJobName"])
            best["TunedHyperParameters"] = {
                k: v for k, v in trial.get("HyperParameters", {}).items() if not k.startswith("sagemaker_")
            }
        self.result.tuning_job = tuning
        self.progress.say(
            f"tuning {tuning['HyperParameterTuningJobStatus']}: best {best.get('TrainingJobName')} "
            f"{json.dumps(best.get('TunedHyperParameters', {}))}"
        )

    # -- stage checks ----------------------------------------------------------------------------
    def _first_job(self) -> tuple[str, str] | None:
        """What the manifest event started: the features job, or (AugmentTrials) the tuning job."""
        features = self._newest_training_job(contract.FEATURES_INFIX)
        if features:
            return "features", features
        tuning = self._tuning_job_name()
        return ("tuning", tuning) if tuning else None

    def _tuning_job_name(self) -> str | None:
        jobs = self.sm.list_hyper_parameter_tuning_jobs(SortBy="CreationTime", SortOrder="Descending")
        names = [j["HyperParameterTuningJobName"] for j in jobs.get("HyperParameterTuningJobSummaries", [])]
        return names[0] if names else None

    def _tuning_done(self, name: str) -> dict[str, Any] | None:
        tuning = self.sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        status = tuning["HyperParameterTuningJobStatus"]
        counters = tuning.get("TrainingJobStatusCounters", {})
        key = (status, json.dumps(counters, sort_keys=True))
        if key != getattr(self, "_last_tuning_state", None):
            self._last_tuning_state = key
            done = counters.get("Completed", 0)
            self.progress.say(f"tuning {status}: {done}/{self.settings.trials} trials completed {counters}")
        if status in ("Failed", "Stopped"):
            raise PipelineFailedError(f"tuning job {name} {status}: {tuning.get('FailureReason', '')}")
        return tuning if status == "Completed" else None

    def _newest_training_job(self, infix: str) -> str | None:
        jobs = self.sm.list_training_jobs(
            NameContains=f"{self.prefix}{infix}", SortBy="CreationTime", SortOrder="Descending"
        )
        names = [j["TrainingJobName"] for j in jobs.get("TrainingJobSummaries", [])]
        return names[0] if names else None

    def _training_job_name(self) -> str | None:
        return self._newest_training_job(contract.TRAINING_INFIX)

    def _job_done(self, name: str, what: str = "training") -> dict[str, Any] | None:
        job = self.sm.describe_training_job(TrainingJobName=name)
        status = job["TrainingJobStatus"]
        if status in ("Failed", "Stopped"):
            raise PipelineFailedError(f"{what} job {name} {status}: {job.get('FailureReason', '')}")
        return job if status == "Completed" else None

    def _decision(self, job_name: str) -> dict[str, Any] | None:
        bucket = self.outputs["ArtifactsBucketName"]
        try:
            body = self.s3.get_object(Bucket=bucket, Key=f"decisions/{job_name}.json")["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        return json.loads(body)

    def _endpoint(self, name: str, job_name: str) -> dict[str, Any] | None:
        decision = self._decision(job_name) or {}
        if decision.get("endpoint_outcome", {}).get("status") != "in-service":
            return None  # a failed or rolled-back outcome also comes as a notification: check_failures
        self.result.decision = decision
        try:
            endpoint = self.sm.describe_endpoint(EndpointName=name)
        except self.sm.exceptions.ClientError:
            return None
        if endpoint["EndpointStatus"] == "Failed":
            raise PipelineFailedError(f"endpoint {name} Failed: {endpoint.get('FailureReason', '')}")
        return endpoint if endpoint["EndpointStatus"] == "InService" else None

    def _classify(self, zip_path: Path) -> None:
        bucket, prefix = self.inference_subscription()
        images = test_images_from_zip(zip_path, self.settings.classify_images)
        if not images:
            raise PipelineFailedError(f"{zip_path} has no test images to classify")
        expected: dict[str, str] = {}
        for name, data in images:
            key = f"{prefix}demo/{name}"
            self.s3.put_object(Bucket=bucket, Key=key, Body=data)
            expected[f"results/{key[len(prefix) :]}.json"] = name.split("/")[0]
            self.progress.say(f"dropped s3://{bucket}/{key}")

        def all_results() -> bool:
            for result_key in expected:
                if result_key in self.result.predictions:
                    continue
                try:
                    body = self.s3.get_object(Bucket=bucket, Key=result_key)["Body"].read()
                except self.s3.exceptions.NoSuchKey:
                    continue
                self.result.predictions[result_key] = json.loads(body)
                self.progress.say(f"s3://{bucket}/{result_key}: {json.dumps(json.loads(body))}")
            return len(self.result.predictions) == len(expected)

        self.wait("the classification results", all_results, poll_s=0.5)
        self.expected_classes = expected

    def _collect_artifacts(self, job: dict[str, Any]) -> None:
        """Extract profiler-report.html and loss.png from the job's output.tar.gz into the state dir."""
        base = job["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        bucket, _, prefix = base.removeprefix("s3://").partition("/")
        key = contract.job_output_key(prefix, job["TrainingJobName"], contract.OUTPUT_ARCHIVE)
        target = self.cloud.state_dir / "artifacts" / job["TrainingJobName"]
        try:
            data = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            self.progress.say(f"no output archive at s3://{bucket}/{key}")
            return
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            archive.extractall(target, filter="data")
        for wanted in contract.REPORT_FILES:
            found = sorted(target.rglob(wanted))
            if found:
                self.result.artifacts[wanted] = str(found[0])
