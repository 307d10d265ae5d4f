"""The whole pipeline, locally, driven by events alone.

    .venv/bin/python -m localcloud.demo [--data ZIP] [--keep-running] [--trials 4 --parallel 2 ...]

Builds the sample dataset zip (unless --data names a real one), starts the local cloud from
template.yaml, uploads the zip under the ingest function's prefix, and then only watches: S3 and
EventBridge events drive ingest, tuning, profiled training, the gate and the endpoint. It then drops
test images into the inference bucket and prints the result JSONs the classify function writes.
Any failure (a Lambda that exhausted its retries, a failed job, a gate rejection, the overall
timeout) is printed with its reason and gives a non-zero exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import traceback
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dogclf import contract
from localcloud.cloud import REPO_ROOT, LocalCloud, LocalCloudConfig
from localcloud.lambda_runner import InvocationRecord

STATE_MARKER = ".localcloud-state"
STATE_FILE = "state.json"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# Notification subjects that mean the pipeline stopped short of a deployed model.
# "Model deploy failed" / "Model rolled back" are the endpoint's real outcome (pipeline.endpoint_lifecycle).
FAILURE_SUBJECTS = ("rejected", "failed", "stopped", "no model", "not deployed", "rolled back")

EXIT_OK = 0
EXIT_PIPELINE_FAILED = 1
EXIT_GATE_REJECTED = 2
EXIT_TIMEOUT = 3


class PipelineFailedError(RuntimeError):
    def __init__(self, reason: str, exit_code: int = EXIT_PIPELINE_FAILED) -> None:
        super().__init__(reason)
        self.exit_code = exit_code


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
    epochs: str = "5,6"
    batch_sizes: str = "16,32"
    # Adam above ~0.02 overshoots in the first steps on this data (loss x5 at step 1), which
    # PoorWeightInitialization (blocking) reads as "loss did not decrease within 5 steps".
    learning_rates: str = "0.001,0.01"
    accuracy_threshold: float = 0.5
    classify_images: int = 3
    timeout_s: float = 600.0
    keep_running: bool = False
    verbose: bool = False
    extra_parameters: dict[str, str] = field(default_factory=dict)

    def parameter_overrides(self) -> dict[str, str]:
        overrides = {
            "PretrainedWeights": "none",  # offline: no weight download
            "ImageSize": str(self.image_size),
            "MaxTuningJobs": str(self.trials),
            "MaxParallelTuningJobs": str(self.parallel),
            "EpochsRange": self.epochs,
            "BatchSizeValues": self.batch_sizes,
            "LearningRateRange": self.learning_rates,
            "AccuracyThreshold": str(self.accuracy_threshold),
            "LogLevel": "WARNING",
            "UrlImportAllowLoopbackHttp": "true",  # `cli --local import-url http://127.0.0.1:PORT/x.zip`
        }
        overrides.update(self.extra_parameters)
        return overrides


@dataclass
class DemoResult:
    exit_code: int
    reason: str = ""
    stage_seconds: dict[str, float] = field(default_factory=dict)
    tuning_job: dict[str, Any] = field(default_factory=dict)
    training_job: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] = field(default_factory=dict)
    endpoint: dict[str, Any] = field(default_factory=dict)
    predictions: dict[str, Any] = field(default_factory=dict)  # result key -> result JSON
    artifacts: dict[str, str] = field(default_factory=dict)  # profiler report, loss plot paths
    notifications: list[dict[str, str]] = field(default_factory=list)
    poller_errors: list[str] = field(default_factory=list)  # the local S3 event poller's errors


class Progress:
    """Timestamped progress lines and the stage timer."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.stage_seconds: dict[str, float] = {}
        self._stage: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def say(self, text: str) -> None:
        with self._lock:
            print(f"[{time.monotonic() - self.started:6.1f}s] {text}", flush=True)

    def stage(self, name: str) -> None:
        now = time.monotonic()
        if self._stage:
            previous, began = self._stage
            self.stage_seconds[previous] = now - began
        self._stage = (name, now)
        self.say(f"== {name}")

    def finish(self) -> None:
        if self._stage:
            previous, began = self._stage
            self.stage_seconds[previous] = time.monotonic() - began
            self._stage = None

    def on_record(self, record: InvocationRecord) -> None:
        outcome = "ok" if record.ok else f"ERROR {record.error}"
        retry = f" (attempt {record.attempt})" if record.attempt > 1 else ""
        self.say(f"lambda {record.function}{retry}: {record.summary} -> {outcome} [{record.duration_s:.1f}s]")


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
    env = {"PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'training'}", "PATH": "/usr/bin:/bin"}
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


# -- state dir --------------------------------------------------------------------------------------
def prepare_state_dir(state_dir: Path) -> None:
    """Start from a clean state dir, but never wipe a folder we did not create."""
    if state_dir.exists() and any(state_dir.iterdir()):
        if not (state_dir / STATE_MARKER).exists():
            raise PipelineFailedError(f"{state_dir} exists and is not a local cloud state dir; pick another")
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / STATE_MARKER).write_text("created by localcloud; safe to delete\n")


def write_state_file(cloud: LocalCloud, state_dir: Path) -> Path:
    """What the CLI needs to talk to this local cloud (``python -m cli --local ...``)."""
    path = state_dir / STATE_FILE
    document = {
        "region": cloud.config.region,
        "stack_name": cloud.config.stack_name,
        "environment": cloud.environment(),
        "endpoints": cloud.endpoints,
        "outputs": cloud.outputs(),
    }
    path.write_text(json.dumps(document, indent=2))
    return path


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
        tuning_name = self.wait("the tuning job to start (ingest + start-tuning)", self._tuning_job_name)
        progress.say(f"tuning job {tuning_name} started")

        progress.stage("tuning")
        tuning = self.wait("the tuning job to finish", lambda: self._tuning_done(tuning_name), poll_s=2.0)
        best = tuning.get("BestTrainingJob", {})
        if best and not best.get("TunedHyperParameters"):
            # Fall back to the best trial's own hyperparameters, without the toolkit's keys.
            trial = self.sm.describe_training_job(TrainingJobName=best["TrainingJobName"])
            best["TunedHyperParameters"] = {
                k: v for k, v in trial.get("HyperParameters", {}).items() if not k.startswith("sagemaker_")
            }
        self.result.tuning_job = tuning
        progress.say(
            f"tuning {tuning['HyperParameterTuningJobStatus']}: best {best.get('TrainingJobName')} "
            f"{json.dumps(best.get('TunedHyperParameters', {}))}"
        )

        progress.stage("profiled training")
        job_name = self.wait("the profiled training job to start", self._training_job_name)
        progress.say(f"profiled training job {job_name} started")
        job = self.wait(
            "the profiled training job to finish", lambda: self._training_done(job_name), poll_s=2.0
        )
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

    # -- stage checks ----------------------------------------------------------------------------
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

    def _training_job_name(self) -> str | None:
        jobs = self.sm.list_training_jobs(
            NameContains=f"{self.prefix}{contract.TRAINING_INFIX}",
            SortBy="CreationTime",
            SortOrder="Descending",
        )
        names = [j["TrainingJobName"] for j in jobs.get("TrainingJobSummaries", [])]
        return names[0] if names else None

    def _training_done(self, name: str) -> dict[str, Any] | None:
        job = self.sm.describe_training_job(TrainingJobName=name)
        status = job["TrainingJobStatus"]
        if status in ("Failed", "Stopped"):
            raise PipelineFailedError(f"training job {name} {status}: {job.get('FailureReason', '')}")
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


# -- summary ----------------------------------------------------------------------------------------
def print_summary(result: DemoResult, progress: Progress, total_s: float) -> None:
    print("\n" + "=" * 78)
    print("SUMMARY")
    best = result.tuning_job.get("BestTrainingJob", {})
    if best:
        objective = best.get("FinalHyperParameterTuningJobObjectiveMetric", {})
        print(f"best trial:            {best.get('TrainingJobName')}")
        print(f"best hyperparameters:  {json.dumps(best.get('TunedHyperParameters', {}))}")
        if objective:
            print(f"best objective:        {objective.get('MetricName')} = {objective.get('Value')}")
    if result.training_job:
        metrics = {
            m["MetricName"]: round(m["Value"], 4) for m in result.training_job.get("FinalMetricDataList", [])
        }
        print(f"profiled job:          {result.training_job['TrainingJobName']}")
        print(f"final metrics:         {json.dumps(metrics)}")
        service = result.training_job.get("DebugRuleEvaluationStatuses", []) + result.training_job.get(
            "ProfilerRuleEvaluationStatuses", []
        )
        if service:  # builtin mode only; locally derived from the in-script verdicts (no rule containers)
            print("Debugger service rule statuses (builtin mode):")
            for rule in service:
                print(f"  {rule['RuleConfigurationName']:<28} {rule['RuleEvaluationStatus']}")
    if result.decision:
        decision = result.decision
        if decision.get("rules"):
            print("rule verdicts the gate counted (in-script = evaluated inside train_model.py):")
            for rule in decision["rules"]:
                steps = "-" if rule.get("steps") is None else f"{rule['steps']} saved steps"
                print(
                    f"  {rule.get('source') or 'no verdict':<10} {rule['rule']:<26} {rule['status']:<14} "
                    f"{steps:<16} {'blocking' if rule.get('blocking') else 'warns only'}"
                )
        if contract.PROFILER_REPORT_RULE in decision.get("rule_verdicts", {}):
            findings = decision.get("profiler_findings") or []
            print(f"{contract.PROFILER_REPORT_RULE} findings:  {', '.join(findings) or 'none'}")
        print(
            f"gate decision:         {'DEPLOY' if decision.get('deploy') else 'REJECT'} "
            f"({decision.get('metric_name')}={decision.get('metric_value')} "
            f"vs threshold {decision.get('threshold')}; endpoint {decision.get('endpoint_action')})"
        )
        for reason in result.decision.get("reasons", []):
            print(f"  reason: {reason}")
        for warning in result.decision.get("warnings", []):
            print(f"  warning: {warning}")
    if result.endpoint:
        print(f"endpoint:              {result.endpoint['EndpointName']} {result.endpoint['EndpointStatus']}")
    for key, prediction in result.predictions.items():
        true_class = key.split("/")[-2].split(".", 1)[-1]  # results/demo/<NNN.Class>/<file>.json
        print(f"prediction {key}: {_short_prediction(prediction)} (true class {true_class})")
    for name, path in result.artifacts.items():
        print(f"{name + ':':<22} {path}")
    print("\nstage timings (wall seconds):")
    for stage, seconds in progress.stage_seconds.items():
        print(f"  {stage:<20} {seconds:7.1f}")
    print(f"  {'total':<20} {total_s:7.1f}")
    if result.exit_code:
        print(f"\nFAILED (exit {result.exit_code}): {result.reason}")
        if result.poller_errors:  # uploads whose S3 events may never have reached a function
            print(f"S3 event poller errors ({len(result.poller_errors)}, last 5):")
            for error in result.poller_errors[-5:]:
                print(f"  {error}")
    print("=" * 78, flush=True)


def _short_prediction(prediction: Any) -> str:
    if isinstance(prediction, dict):
        top = prediction.get("predictions") or prediction.get("top_k") or prediction.get("prediction")
        if isinstance(top, list) and top:
            return json.dumps(top[0])
        if top is not None:
            return json.dumps(top)
    return json.dumps(prediction)[:200]


# -- entry points -----------------------------------------------------------------------------------
def run_demo(
    settings: DemoSettings, after_run: Callable[[LocalCloud, DemoResult], None] | None = None
) -> DemoResult:
    """Run the pipeline; ``after_run`` (tests, tools) sees the cloud still up after a successful run."""
    progress = Progress()
    state_dir = settings.state_dir.resolve()
    result = DemoResult(exit_code=EXIT_OK)
    cloud: LocalCloud | None = None
    run: DemoRun | None = None
    try:
        prepare_state_dir(state_dir)
        progress.stage("dataset")
        if settings.data:
            zip_path = settings.data.resolve()
            if not zip_path.is_file():
                raise PipelineFailedError(f"--data {settings.data}: no such file")
            progress.say(f"using {zip_path}")
        else:
            zip_path = build_sample_zip(settings, state_dir / "sample-dogImages.zip")
            progress.say(
                f"built {zip_path} ({settings.num_classes} classes, {settings.image_size}px, "
                f"{zip_path.stat().st_size / 1e3:.0f} kB)"
            )
        progress.stage("start local cloud")
        config = LocalCloudConfig(
            template=settings.template,
            state_dir=state_dir,
            stack_name=settings.stack_name,
            parameter_overrides=settings.parameter_overrides(),
            on_job_log=(lambda job, line: progress.say(f"{job}: {line.rstrip()}"))
            if settings.verbose
            else None,
        )
        cloud = LocalCloud(config, on_record=progress.on_record)
        cloud.start()
        state_file = write_state_file(cloud, state_dir)
        progress.say(
            f"S3/DynamoDB/SNS/SQS at {cloud.endpoints['s3']}, SageMaker at {cloud.endpoints['sagemaker']}"
        )
        progress.say(f"state: {state_file}")
        run = DemoRun(settings, cloud, progress)
        result = run.run(zip_path)
        if after_run is not None:
            after_run(cloud, result)
    except PipelineFailedError as failure:
        result.exit_code, result.reason = failure.exit_code, str(failure)
        if run is not None:
            result = _merge_partial(run.result, result)
    except KeyboardInterrupt:
        result.exit_code, result.reason = 130, "interrupted"
    except Exception as error:  # an unexpected error still gets a summary, a reason and exit 1
        traceback.print_exc()
        result.exit_code, result.reason = EXIT_PIPELINE_FAILED, f"{type(error).__name__}: {error}"
        if run is not None:
            result = _merge_partial(run.result, result)
    finally:
        progress.finish()
        result.stage_seconds = dict(progress.stage_seconds)
        if cloud is not None:
            result.poller_errors = list(cloud.poller_errors)
        print_summary(result, progress, time.monotonic() - progress.started)
        if cloud is not None:
            if settings.keep_running and result.exit_code in (EXIT_OK, EXIT_GATE_REJECTED):
                keep_running(cloud)
            cloud.stop()
    return result


def _merge_partial(partial: DemoResult, failure: DemoResult) -> DemoResult:
    partial.exit_code, partial.reason = failure.exit_code, failure.reason
    return partial


def keep_running(cloud: LocalCloud) -> None:
    """Print how to reach the cloud, then serve until Ctrl-C or SIGTERM."""
    print("\nThe local cloud keeps running. In another shell:")
    for name, value in sorted(cloud.environment().items()):
        print(f"  export {name}={value}")
    print(f"  .venv/bin/python -m cli --local --state-file {cloud.state_dir / STATE_FILE} status")
    print("Press Ctrl-C to stop.", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass


def parse_args(argv: list[str] | None = None) -> DemoSettings:
    defaults = DemoSettings()
    parser = argparse.ArgumentParser(prog="python -m localcloud.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, help="a dataset zip in the dogImages layout (default: build a sample)"
    )
    parser.add_argument("--keep-running", action="store_true", help="leave the local cloud up afterwards")
    parser.add_argument("--template", type=Path, default=defaults.template, help="SAM template to run")
    parser.add_argument(
        "--state-dir", type=Path, default=defaults.state_dir, help="local cloud state (wiped)"
    )
    parser.add_argument("--classes", type=int, default=defaults.num_classes, help="sample dataset classes")
    parser.add_argument("--train-per-class", type=int, default=defaults.train_per_class)
    parser.add_argument("--valid-per-class", type=int, default=defaults.valid_per_class)
    parser.add_argument("--test-per-class", type=int, default=defaults.test_per_class)
    parser.add_argument(
        "--image-size", type=int, default=defaults.image_size, help="sample and model image size"
    )
    parser.add_argument("--trials", type=int, default=defaults.trials, help="tuning jobs in total")
    parser.add_argument("--parallel", type=int, default=defaults.parallel, help="tuning jobs at once")
    parser.add_argument("--epochs", default=defaults.epochs, help="min,max epochs the tuner searches")
    parser.add_argument(
        "--batch-sizes", default=defaults.batch_sizes, help="batch sizes the tuner picks from"
    )
    parser.add_argument("--learning-rates", default=defaults.learning_rates, help="min,max learning rate")
    parser.add_argument("--accuracy-threshold", type=float, default=defaults.accuracy_threshold)
    parser.add_argument(
        "--classify", type=int, default=defaults.classify_images, help="test images to classify"
    )
    parser.add_argument("--timeout", type=float, default=defaults.timeout_s, help="overall limit in seconds")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other template parameter override",
    )
    parser.add_argument("--verbose", action="store_true", help="also print the training jobs' log lines")
    args = parser.parse_args(argv)
    extra = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--param {item!r}: expected KEY=VALUE")
        extra[key] = value
    return DemoSettings(
        data=args.data,
        template=args.template,
        state_dir=args.state_dir,
        num_classes=args.classes,
        train_per_class=args.train_per_class,
        valid_per_class=args.valid_per_class,
        test_per_class=args.test_per_class,
        image_size=args.image_size,
        trials=args.trials,
        parallel=args.parallel,
        epochs=args.epochs,
        batch_sizes=args.batch_sizes,
        learning_rates=args.learning_rates,
        accuracy_threshold=args.accuracy_threshold,
        classify_images=args.classify,
        timeout_s=args.timeout,
        keep_running=args.keep_running,
        verbose=args.verbose,
        extra_parameters=extra,
    )


def main(argv: list[str] | None = None) -> int:
    return run_demo(parse_args(argv)).exit_code


if __name__ == "__main__":
    sys.exit(main())
