"""Runs one training job the way a SageMaker training container does, in a local subprocess.

The job gets its own ``SAGEMAKER_BASE_DIR`` laid out like ``/opt/ml`` and is started through
sagemaker-training's own entry (``python -m sagemaker_training.cli.train``), so the toolkit builds
``SM_*`` variables, ``--key value`` arguments and ``output/failure`` exactly as in the container.
We only do the platform's part: download channels and the source dir, write ``input/config/*.json``,
stream and scrape the log, enforce ``MaxRuntimeInSeconds``, and upload the artifacts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import tarfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from dogclf import contract
from localcloud.containerenv import ContainerEnvError, overlay_python

if TYPE_CHECKING:
    from localcloud.sagemaker.registry import TrainingJob, TrainingRegistry

logger = logging.getLogger("localcloud.sagemaker.training")

# Time a job gets between SIGTERM and SIGKILL when stopped (SageMaker waits 120 s; tests can't).
STOP_GRACE_SECONDS = 10.0
FAILURE_REASON_LIMIT = 1024  # DescribeTrainingJob's FailureReason max length
LOG_TAIL_LINES = 20
LOG_KEEP_LINES = 200  # enough to hold the last traceback


TOOLKIT_FAILURE_MARK = "sagemaker-training-toolkit ERROR    Reporting training FAILURE"
TOOLKIT_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ sagemaker-training-toolkit ")


class JobSetupError(Exception):
    """The platform could not prepare the job (bad channel, missing source dir...): job Failed."""


def parse_s3_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise JobSetupError(f"not an S3 URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def decode_hyperparameter(value: str) -> Any:
    """Decode like the toolkit does: JSON if it parses, the raw string otherwise."""
    try:
        return json.loads(value)
    except (json.JSONDecodeError, TypeError):
        return value


class MetricScraper:
    """Applies a job's MetricDefinitions to each log line; the last value of each metric wins."""

    def __init__(self, definitions: list[dict[str, str]]) -> None:
        self._patterns = [(d["Name"], re.compile(d["Regex"])) for d in definitions]
        self.latest: dict[str, tuple[float, float]] = {}  # name -> (value, epoch seconds)

    def feed(self, line: str) -> None:
        for name, pattern in self._patterns:
            match = pattern.search(line)
            if not match:
                continue
            text = match.group(1) if pattern.groups else match.group(0)
            try:
                value = float(text)
            except (TypeError, ValueError):
                continue  # SageMaker ignores matches that are not numbers
            self.latest[name] = (value, time.time())

    def final_metric_data_list(self) -> list[dict[str, Any]]:
        return [
            {"MetricName": name, "Value": value, "Timestamp": stamp}
            for name, _ in self._patterns
            if name in self.latest
            for value, stamp in [self.latest[name]]
        ]


class TrainingJobRunner:
    """Drives one job through Downloading -> Training -> Uploading -> Completed/Failed/Stopped."""

    def __init__(self, registry: TrainingRegistry, job: TrainingJob) -> None:
        self.registry = registry
        self.context = registry.context
        self.job = job
        self.base_dir = self.context.state_dir / "jobs" / job.name
        self.process: subprocess.Popen[str] | None = None
        self.max_runtime_exceeded = False
        self._log_tail: deque[str] = deque(maxlen=LOG_KEEP_LINES)

    # -- public ------------------------------------------------------------------------------------

    def run(self) -> None:
        """Thread body. Every outcome ends in a terminal status; nothing escapes the thread."""
        try:
            with self.registry.training_slot(self.job):
                if self.job.stop_requested.is_set():
                    self.registry.finish_training_job(self.job, "Stopped", secondary="Stopped")
                    return
                self._run_in_slot()
        except JobSetupError as error:
            self.registry.finish_training_job(self.job, "Failed", failure_reason=f"ClientError: {error}")
        except Exception as error:  # the job fails, the emulator keeps serving
            logger.exception("training job %s crashed in the emulator", self.job.name)
            reason = f"InternalServerError: {type(error).__name__}: {error}"
            self.registry.finish_training_job(self.job, "Failed", failure_reason=reason)

    def stop(self) -> None:
        """Terminate the job's process group; run() then records Stopped."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        _signal_group(process, signal.SIGTERM)
        threading.Thread(target=self._kill_after_grace, args=(process,), daemon=True).start()

    # -- steps -------------------------------------------------------------------------------------

    def _run_in_slot(self) -> None:
        desc = self.job.desc
        self.registry.set_secondary_status(self.job, "Downloading", "Downloading input data")
        self._prepare_directories()
        self._download_channels(desc.get("InputDataConfig") or [])
        self._download_source_dir(desc.get("HyperParameters") or {})
        self._sync_checkpoints(download=True)
        self._write_config_files()
        if self.job.stop_requested.is_set():
            self.registry.finish_training_job(self.job, "Stopped", secondary="Stopped")
            return

        self.registry.set_secondary_status(
            self.job, "Training", "Training image download completed. Training in progress."
        )
        exit_code = self._run_process()
        self._sync_checkpoints(download=False)

        stopped = self.job.stop_requested.is_set() or self.max_runtime_exceeded
        self.registry.set_secondary_status(self.job, "Uploading", "Uploading generated training model")
        model_uri = self._upload_artifacts(include_model=exit_code == 0 or stopped)
        rule_statuses = self._rule_statuses(final=True, succeeded=exit_code == 0)

        if self.max_runtime_exceeded:
            self.registry.finish_training_job(
                self.job, "Stopped", secondary="MaxRuntimeExceeded", model_uri=model_uri, rules=rule_statuses
            )
        elif self.job.stop_requested.is_set():
            self.registry.finish_training_job(
                self.job, "Stopped", secondary="Stopped", model_uri=model_uri, rules=rule_statuses
            )
        elif exit_code == 0:
            self.registry.finish_training_job(self.job, "Completed", model_uri=model_uri, rules=rule_statuses)
        else:
            self.registry.finish_training_job(
                self.job, "Failed", failure_reason=self._failure_reason(exit_code), rules=rule_statuses
            )

    def _prepare_directories(self) -> None:
        for sub in ("input/config", "input/data", "model", "output/data", "code"):
            (self.base_dir / sub).mkdir(parents=True, exist_ok=True)

    def _download_channels(self, channels: list[dict[str, Any]]) -> None:
        s3 = self.context.s3_client()
        for channel in channels:
            name = channel["ChannelName"]
            source = channel.get("DataSource", {}).get("S3DataSource")
            if source is None:
                raise JobSetupError(f"channel {name}: only S3DataSource is supported locally")
            if source.get("S3DataType", "S3Prefix") != "S3Prefix":
                raise JobSetupError(f"channel {name}: only S3DataType=S3Prefix is supported locally")
            bucket, prefix = parse_s3_uri(source["S3Uri"])
            target = self.base_dir / "input" / "data" / name
            target.mkdir(parents=True, exist_ok=True)
            count = 0
            try:
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                    for item in page.get("Contents", []):
                        key = item["Key"]
                        if key.endswith("/"):
                            continue
                        destination = target / _relative_key(key, prefix)
                        destination.parent.mkdir(parents=True, exist_ok=True)
                        s3.download_file(bucket, key, str(destination))
                        count += 1
            except self.context.s3_errors as error:
                raise JobSetupError(f"Data download failed for channel {name}: {error}") from error
            if count == 0:
                # SageMaker refuses an empty channel rather than training on nothing.
                raise JobSetupError(
                    f"Data download failed: no objects under {source['S3Uri']} (channel {name})"
                )

    def _download_source_dir(self, hyperparameters: dict[str, str]) -> None:
        raw = hyperparameters.get("sagemaker_submit_directory")
        if raw is None:
            raise JobSetupError("HyperParameters lacks sagemaker_submit_directory (the script source)")
        uri = decode_hyperparameter(raw)
        bucket, key = parse_s3_uri(str(uri))
        archive = self.base_dir / "sourcedir.tar.gz"
        try:
            self.context.s3_client().download_file(bucket, key, str(archive))
        except self.context.s3_errors as error:
            raise JobSetupError(f"could not download source dir {uri}: {error}") from error
        code_dir = self.base_dir / "code"
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(code_dir, filter="data")
        except (tarfile.TarError, OSError) as error:
            raise JobSetupError(f"source dir {uri} is not a readable tar.gz: {error}") from error
        program = decode_hyperparameter(hyperparameters.get("sagemaker_program", '""'))
        if program and not (code_dir / str(program)).exists():
            raise JobSetupError(f"sagemaker_program {program!r} is not in the source dir {uri}")

    def _write_config_files(self) -> None:
        desc = self.job.desc
        config = self.base_dir / "input" / "config"
        resources = desc.get("ResourceConfig", {})
        instance_type = resources.get("InstanceType", "local")
        _write_json(config / "hyperparameters.json", desc.get("HyperParameters") or {})
        _write_json(
            config / "resourceconfig.json",
            {
                "current_host": "algo-1",
                "current_instance_type": instance_type,
                "current_group_name": "homogeneousCluster",
                "hosts": ["algo-1"],
                "instance_groups": [
                    {
                        "instance_group_name": "homogeneousCluster",
                        "instance_type": instance_type,
                        "hosts": ["algo-1"],
                    }
                ],
                "network_interface_name": "eth0",
            },
        )
        _write_json(
            config / "inputdataconfig.json",
            {
                channel["ChannelName"]: {
                    "TrainingInputMode": channel.get("InputMode")
                    or desc["AlgorithmSpecification"].get("TrainingInputMode", "File"),
                    "S3DistributionType": channel.get("DataSource", {})
                    .get("S3DataSource", {})
                    .get("S3DistributionType", "FullyReplicated"),
                    "RecordWrapperType": channel.get("RecordWrapperType", "None"),
                }
                for channel in desc.get("InputDataConfig") or []
            },
        )
        hook = desc.get("DebugHookConfig")
        if hook:
            # smdebug reads SMDEBUG_CONFIG_FILE_PATH (default /opt/ml/input/config/debughookconfig.json);
            # tensors go to LocalPath, which we keep inside this job's base dir.
            _write_json(
                config / "debughookconfig.json",
                {
                    "S3OutputPath": hook.get("S3OutputPath"),
                    "LocalPath": str(self._local_path(hook.get("LocalPath"), "output/tensors")),
                    "HookParameters": hook.get("HookParameters") or {},
                    "CollectionConfigurations": hook.get("CollectionConfigurations") or [],
                },
            )
        profiler = desc.get("ProfilerConfig")
        if profiler and not profiler.get("DisableProfiler"):
            parameters = dict(profiler.get("ProfilingParameters") or {})
            parameters.setdefault("ProfilerEnabled", True)
            parameters["LocalPath"] = str(self.base_dir / "output" / "profiler")
            if "ProfilingIntervalInMilliseconds" in profiler:
                parameters.setdefault(
                    "ProfilingIntervalInMilliseconds", profiler["ProfilingIntervalInMilliseconds"]
                )
            _write_json(config / "profilerconfig.json", {"ProfilingParameters": parameters})

    def _local_path(self, requested: str | None, default: str) -> Path:
        """Map a container path under /opt/ml (or none) into this job's base dir."""
        if requested and requested.startswith("/opt/ml/"):
            return self.base_dir / requested.removeprefix("/opt/ml/")
        return self.base_dir / default

    def _environment(self) -> dict[str, str]:
        desc = self.job.desc
        config = self.base_dir / "input" / "config"
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("SM_", "SAGEMAKER_", "AWS_ENDPOINT_URL"))
        }
        env.update(desc.get("Environment") or {})
        threads = str(self.context.threads_per_job)
        env.update(
            {
                "SAGEMAKER_BASE_DIR": str(self.base_dir),
                "TRAINING_JOB_NAME": self.job.name,
                "TRAINING_JOB_ARN": desc["TrainingJobArn"],
                # No cluster DNS locally: the toolkit's wait for "algo-1" to resolve is skipped.
                "SM_STUDIO_LOCAL_MODE": "true",
                "SMDEBUG_CONFIG_FILE_PATH": str(config / "debughookconfig.json"),
                "SMPROFILER_CONFIG_PATH": str(config / "profilerconfig.json"),
                "AWS_REGION": self.context.region,
                "AWS_DEFAULT_REGION": self.context.region,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "S3_ENDPOINT_URL": self.context.s3_endpoint_url,
                "AWS_ENDPOINT_URL_S3": self.context.s3_endpoint_url,
                "PYTHONUNBUFFERED": "1",
                # Several jobs share few cores: give each its share instead of oversubscribing.
                "OMP_NUM_THREADS": threads,
                "MKL_NUM_THREADS": threads,
            }
        )
        return env

    def _run_process(self) -> int:
        log_path = self.base_dir / "training.log"
        scraper = MetricScraper(self.job.desc["AlgorithmSpecification"].get("MetricDefinitions") or [])
        python = self._job_python(log_path)
        if python is None:
            return 1  # the source dir's requirements could not be installed; the log says why
        command = [str(python), "-m", "sagemaker_training.cli.train"]
        self.process = subprocess.Popen(
            command,
            cwd=self.base_dir / "code",
            env=self._environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group, so stop() reaches the script too
        )
        if self.job.stop_requested.is_set():
            self.stop()  # a stop that raced the start
        deadline = self.job.desc.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
        timer = threading.Timer(float(deadline), self._on_max_runtime) if deadline else None
        if timer:
            timer.daemon = True
            timer.start()
        assert self.process.stdout is not None
        with log_path.open("a", encoding="utf-8") as log_file:
            for raw_line in self.process.stdout:
                line = raw_line.rstrip("\n")
                log_file.write(line + "\n")
                log_file.flush()
                self._log_tail.append(line)
                scraper.feed(line)
                self.job.final_metrics = scraper.final_metric_data_list()
                self.context.job_log_line(self.job.name, line)
        exit_code = self.process.wait()
        if timer:
            timer.cancel()
        self.job.final_metrics = scraper.final_metric_data_list()
        return exit_code

    def _job_python(self, log_path: Path) -> Path | None:
        """The image's interpreter, or, when the source dir ships requirements.txt, the cached overlay
        over it that holds them. The toolkit then runs its own `pip install -r requirements.txt` as in
        the container, and finds everything already satisfied (no download)."""
        base = Path(self.context.training_python)
        requirements = self.base_dir / "code" / "requirements.txt"
        with log_path.open("w", encoding="utf-8") as log_file:
            if not requirements.is_file():
                return base

            def log(line: str) -> None:
                log_file.write(line + "\n")
                log_file.flush()
                self._log_tail.append(line)
                self.context.job_log_line(self.job.name, line)

            try:
                return overlay_python(requirements, base=base, log=log)
            except ContainerEnvError as error:
                # Permanent for this job, as in the container (the toolkit does not retry its pip
                # step): pip already retried transient network errors itself (--retries, 5).
                log(f"InstallRequirementsError: {error}")
                return None

    def _on_max_runtime(self) -> None:
        self.max_runtime_exceeded = True
        self.stop()

    def _kill_after_grace(self, process: subprocess.Popen[str]) -> None:
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)

    def _upload_artifacts(self, include_model: bool) -> str | None:
        """Tar model/ and output/data/ to <S3OutputPath>/<job>/output/ (output.tar.gz always)."""
        desc = self.job.desc
        bucket, prefix = parse_s3_uri(desc["OutputDataConfig"]["S3OutputPath"])
        prefix = "/".join(part for part in (prefix.rstrip("/"), self.job.name, "output") if part)
        s3 = self.context.s3_client()
        model_uri = None
        uploads = [(contract.OUTPUT_ARCHIVE, self.base_dir / "output" / "data")]
        if include_model:
            uploads.insert(0, (contract.MODEL_ARCHIVE, self.base_dir / "model"))
        for archive_name, source in uploads:
            archive = self.base_dir / archive_name
            _tar_directory(source, archive)
            s3.upload_file(str(archive), bucket, f"{prefix}/{archive_name}")
            if archive_name == contract.MODEL_ARCHIVE:
                model_uri = f"s3://{bucket}/{prefix}/{archive_name}"
        self._upload_tree(self._debug_local_path(), desc.get("DebugHookConfig"), "debug-output")
        report = self.base_dir / "output" / "data" / contract.PROFILER_REPORT_FILE
        if report.exists():
            key = "/".join(
                part
                for part in (
                    urlparse(desc["OutputDataConfig"]["S3OutputPath"]).path.strip("/"),
                    self.job.name,
                    contract.PROFILER_REPORT_RULE_OUTPUT,
                )
                if part
            )
            s3.upload_file(str(report), bucket, key)
        return model_uri

    def _sync_checkpoints(self, download: bool) -> None:
        """CheckpointConfig: S3Uri -> LocalPath before the script (a resumed spot job finds its
        checkpoints), LocalPath -> S3Uri after it. Spot jobs run on-demand locally, so no interruption
        ever makes the script resume; the sync is what an interrupted job would rely on."""
        config = self.job.desc.get("CheckpointConfig")
        if not config:
            return
        local = self._local_path(config.get("LocalPath") or "/opt/ml/checkpoints", "checkpoints")
        local.mkdir(parents=True, exist_ok=True)
        bucket, prefix = parse_s3_uri(config["S3Uri"])
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        s3 = self.context.s3_client()
        try:
            if download:
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                    for item in page.get("Contents", []):
                        if not item["Key"].endswith("/"):
                            destination = local / _relative_key(item["Key"], prefix)
                            destination.parent.mkdir(parents=True, exist_ok=True)
                            s3.download_file(bucket, item["Key"], str(destination))
                return
            for path in sorted(local.rglob("*")):
                if path.is_file():
                    s3.upload_file(str(path), bucket, prefix + path.relative_to(local).as_posix())
        except self.context.s3_errors as error:
            raise JobSetupError(f"Checkpoint sync with {config['S3Uri']} failed: {error}") from error

    def _debug_local_path(self) -> Path:
        hook = self.job.desc.get("DebugHookConfig") or {}
        return self._local_path(hook.get("LocalPath"), "output/tensors")

    def _upload_tree(self, source: Path, config: dict[str, Any] | None, suffix: str) -> None:
        if not config or not config.get("S3OutputPath") or not source.is_dir():
            return
        bucket, prefix = parse_s3_uri(config["S3OutputPath"])
        base = "/".join(part for part in (prefix.rstrip("/"), self.job.name, suffix) if part)
        s3 = self.context.s3_client()
        for path in sorted(source.rglob("*")):
            if path.is_file():
                s3.upload_file(str(path), bucket, f"{base}/{path.relative_to(source).as_posix()}")

    def _rule_statuses(self, final: bool, succeeded: bool) -> dict[str, list[dict[str, Any]]]:
        """DebugRuleEvaluationStatuses / ProfilerRuleEvaluationStatuses for the rules the request
        configured, and only those, as AWS reports them: an in-script job (no rule configurations)
        gets none, whatever the script wrote.

        Local stand-in for AWS's rule containers (builtin mode), which do not run here: a configured
        rule's status is the verdict the training script wrote for the same rule in rule_verdicts.json,
        and StatusDetails says so. A configured rule without such a verdict is Error (Stopped for a
        stopped job), never a made-up pass. The gate counts one verdict per rule (pipeline.gate).
        """
        configured = {
            status_key: self.job.desc.get(config_key) or []
            for config_key, status_key in (
                ("DebugRuleConfigurations", "DebugRuleEvaluationStatuses"),
                ("ProfilerRuleConfigurations", "ProfilerRuleEvaluationStatuses"),
            )
        }
        if not any(configured.values()):
            return {}
        verdicts = self._script_verdicts()
        result: dict[str, list[dict[str, Any]]] = {}
        for status_key, rules in configured.items():
            statuses = []
            for rule in rules:
                name = rule["RuleConfigurationName"]
                verdict = verdicts.get(name)
                if verdict:
                    status = str(verdict.get("RuleEvaluationStatus", contract.ERROR))
                    details = (
                        "Local emulator: no rule container runs here; this is the training script's "
                        f"in-script verdict for the same rule: {verdict.get('StatusDetails', '')}"
                    )
                    findings = ", ".join(map(str, verdict.get(contract.PROFILER_FINDINGS_KEY) or []))
                    if findings and findings not in details:
                        details += f" (triggered: {findings})"
                elif self.job.stop_requested.is_set():
                    status, details = contract.STOPPED, "Training job stopped before the rule reported."
                else:
                    status = contract.ERROR
                    details = "The training script reported no verdict for this rule (local emulator)."
                    if not succeeded:
                        details = "Training failed before the rule reported a verdict."
                statuses.append(
                    {
                        "RuleConfigurationName": name,
                        "RuleEvaluationStatus": status,
                        "StatusDetails": details[:1024],
                        "LastModifiedTime": time.time(),
                    }
                )
            if statuses:
                result[status_key] = statuses
        return result

    def _script_verdicts(self) -> dict[str, dict[str, Any]]:
        """rule_verdicts.json of SM_OUTPUT_DATA_DIR by rule name ({} when absent or unreadable)."""
        verdict_file = self.base_dir / "output" / "data" / contract.RULE_VERDICTS_FILE
        if not verdict_file.exists():
            return {}
        try:
            rules = json.loads(verdict_file.read_text())["rules"]
            return {rule["RuleConfigurationName"]: rule for rule in rules}
        except (ValueError, KeyError, TypeError) as error:
            logger.warning("job %s: unreadable %s: %s", self.job.name, contract.RULE_VERDICTS_FILE, error)
            return {}

    def _failure_reason(self, exit_code: int) -> str:
        failure_file = self.base_dir / "output" / "failure"
        text = failure_file.read_text(errors="replace").strip() if failure_file.exists() else ""
        error_line = _last_exception_line(list(self._log_tail))
        if not text:
            text = error_line or "\n".join(list(self._log_tail)[-LOG_TAIL_LINES:])
        elif error_line:
            # The toolkit runs the script without capturing stderr, so its ErrorMessage is empty;
            # the framework containers fill it from stderr: do the same from the log.
            text = text.replace('ErrorMessage ""', f"ErrorMessage {json.dumps(error_line)}")
            if error_line not in text:
                text = f"{text}\n{error_line}"
        reason = f"AlgorithmError: {text}" if not text.startswith("ClientError") else text
        if len(reason) > FAILURE_REASON_LIMIT:
            reason = reason[: FAILURE_REASON_LIMIT - 3] + "..."
        return reason


def _last_exception_line(lines: list[str]) -> str | None:
    """The script's last words before the toolkit reported failure: the line ending its last
    traceback ('SomeError: message'), else its last output line (e.g. a SystemExit message)."""
    for index, line in enumerate(lines):
        if TOOLKIT_FAILURE_MARK in line:
            lines = lines[:index]
            break
    starts = [
        index for index, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")
    ]
    if starts:
        for line in lines[starts[-1] + 1 :]:
            if line and not line.startswith((" ", "\t")):
                return line.strip()
    script_lines = [line for line in lines if line.strip() and not TOOLKIT_LOG_LINE.match(line)]
    return script_lines[-1].strip() if script_lines else None


def _relative_key(key: str, prefix: str) -> str:
    """Where an object lands in the channel dir: its key relative to the prefix's folder."""
    if prefix.endswith("/") or not prefix:
        return key[len(prefix) :]
    if key == prefix:
        return key.rsplit("/", 1)[-1]
    if key.startswith(prefix + "/"):
        return key[len(prefix) + 1 :]
    # "data/train" also matches "data/train2/x": keep the part after the prefix's parent folder.
    parent = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    return key[len(parent) :]


def _tar_directory(source: Path, archive: Path) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        if source.is_dir():
            for path in sorted(source.iterdir()):
                tar.add(path, arcname=path.name)


def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2))


def _signal_group(process: subprocess.Popen[str], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
