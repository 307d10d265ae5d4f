"""Runs one training job the way a SageMaker training container does, in a local subprocess.

The job gets its own ``SAGEMAKER_BASE_DIR`` laid out like ``/opt/ml`` and is started through
sagemaker-training's own entry (``python -m sagemaker_training.cli.train``), so the toolkit builds
``SM_*`` variables, ``--key value`` arguments and ``output/failure`` exactly as in the container.
We only do the platform's part: download channels and the source dir, write ``input/config/*.json``,
stream and scrape the log, enforce ``MaxRuntimeInSeconds``, and upload the artifacts.
"""

from __future__ import annotations

import contextlib
import logging
import os
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
from localcloud.environment.containerenv import ContainerEnvError, offline_environment, overlay_python
from localcloud.logs.names import TRAINING_JOBS_GROUP, training_job_stream
from localcloud.logs.shipper import LogStreamWriter, NullStream, open_stream
from localcloud.sagemaker.runners.entrypoint import container_command, image_path, namespaced_command
from localcloud.sagemaker.runners.job_files import (
    JobSetupError,
    MetricScraper,
    decode_hyperparameter,
    failure_reason,
    local_path,
    parse_s3_uri,
    relative_key,
    rule_statuses,
    tar_directory,
    write_config_files,
)

if TYPE_CHECKING:
    from localcloud.sagemaker.registry import TrainingJob, TrainingRegistry

logger = logging.getLogger("localcloud.sagemaker.runners.training")

# Time a job gets between SIGTERM and SIGKILL when stopped (SageMaker waits 120 s; tests can't).
STOP_GRACE_SECONDS = 10.0
LOG_KEEP_LINES = 200  # enough to hold the last traceback
# How long a finished job waits for its last log lines to reach CloudWatch Logs before it reports its
# end (readers such as the SDK's logs_for_job read once more after the end, then stop). Past it the
# lines still arrive, later; the job's outcome never depends on them.
LOG_FLUSH_SECONDS = 15.0


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
        # The job's CloudWatch Logs stream, opened when its instance "starts" (run()).
        self.cloudwatch: LogStreamWriter | NullStream = NullStream()

    # -- public ------------------------------------------------------------------------------------

    def run(self) -> None:
        """Thread body. Every outcome ends in a terminal status; nothing escapes the thread."""
        try:
            with self.registry.training_slot(self.job):
                if self.job.stop_requested.is_set():
                    self.registry.finish_training_job(self.job, "Stopped", secondary="Stopped")
                    return
                self.cloudwatch = open_stream(
                    self.context.logs, TRAINING_JOBS_GROUP, training_job_stream(self.job.name, time.time())
                )
                self._run_in_slot()
        except JobSetupError as error:
            self.registry.finish_training_job(self.job, "Failed", failure_reason=f"ClientError: {error}")
        except Exception as error:  # the job fails, the emulator keeps serving
            logger.exception("training job %s crashed in the emulator", self.job.name)
            reason = f"InternalServerError: {type(error).__name__}: {error}"
            self.registry.finish_training_job(self.job, "Failed", failure_reason=reason)
        finally:
            self.cloudwatch.close()

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
        if container_command(desc) is None:  # the image's own entry: script mode's source dir
            self._download_source_dir(desc.get("HyperParameters") or {})
        self._sync_checkpoints(download=True)
        write_config_files(self.job.desc, self.base_dir)
        if self.job.stop_requested.is_set():
            self.registry.finish_training_job(self.job, "Stopped", secondary="Stopped")
            return

        self.registry.set_secondary_status(
            self.job, "Training", "Training image download completed. Training in progress."
        )
        injected = self.context.faults.training_failure(self.job.name) if self.context.faults else None
        if injected:  # localcloud.faults.spec: as a script that crashed reports it
            self.registry.finish_training_job(self.job, "Failed", failure_reason=injected)
            return
        exit_code = self._run_process()
        self._sync_checkpoints(download=False)

        stopped = self.job.stop_requested.is_set() or self.max_runtime_exceeded
        self.registry.set_secondary_status(self.job, "Uploading", "Uploading generated training model")
        model_uri = self._upload_artifacts(include_model=exit_code == 0 or stopped)
        rules = rule_statuses(
            self.job.desc, self.base_dir, self.job.name, self.job.stop_requested.is_set(), exit_code == 0
        )
        self.cloudwatch.flush(LOG_FLUSH_SECONDS)  # delivery overlapped the uploads; now the rest

        if self.max_runtime_exceeded:
            self.registry.finish_training_job(
                self.job, "Stopped", secondary="MaxRuntimeExceeded", model_uri=model_uri, rules=rules
            )
        elif self.job.stop_requested.is_set():
            self.registry.finish_training_job(
                self.job, "Stopped", secondary="Stopped", model_uri=model_uri, rules=rules
            )
        elif exit_code == 0:
            self.registry.finish_training_job(self.job, "Completed", model_uri=model_uri, rules=rules)
        else:
            self.registry.finish_training_job(
                self.job,
                "Failed",
                failure_reason=failure_reason(self.base_dir, list(self._log_tail)),
                rules=rules,
            )

    def _prepare_directories(self) -> None:
        for sub in ("input/config", "input/data", "model", "output/data", "code"):
            (self.base_dir / sub).mkdir(parents=True, exist_ok=True)

    def _download_channels(self, channels: list[dict[str, Any]]) -> None:
        s3 = self.context.s3_client(self.job.desc["RoleArn"])
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
                        destination = target / relative_key(key, prefix)
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
            self.context.s3_client(self.job.desc["RoleArn"]).download_file(bucket, key, str(archive))
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

    def _environment(self) -> dict[str, str]:
        desc = self.job.desc
        config = self.base_dir / "input" / "config"
        env = offline_environment()
        env.update(desc.get("Environment") or {})
        threads = str(self.context.threads_per_job)
        # The script (smdebug's S3 writes among its calls) acts as the execution role.
        env.update(self.context.role_environment(desc["RoleArn"]))
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
        env = self._environment()
        own_command = container_command(self.job.desc)
        if own_command is not None:
            command = namespaced_command(own_command, self.base_dir)
            env = image_path(env, python)
        self.process = subprocess.Popen(
            command,
            cwd=self.base_dir / "code",
            env=env,
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
                self.cloudwatch.put(line)
        exit_code = self.process.wait()
        if timer:
            timer.cancel()
        self.job.final_metrics = scraper.final_metric_data_list()
        return exit_code

    def _job_python(self, log_path: Path) -> Path | None:
        """The image's interpreter, or, when the source dir ships requirements.txt, the cached overlay
        over it that holds them, built with no package index (containerenv.OFFLINE_PIP_ENVIRONMENT:
        only the wheels the source dir ships install). The toolkit then runs its own `pip install -r
        requirements.txt` as in the container, and finds everything already satisfied."""
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
                self.cloudwatch.put(line)

            try:
                return overlay_python(requirements, base=base, log=log, env=offline_environment())
            except ContainerEnvError as error:
                # Permanent for this job, as in the container (the toolkit does not retry its pip
                # step). No index is reachable, so nothing here is a network hiccup: a requirement
                # the source dir does not ship a wheel for can never install.
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
        s3 = self.context.s3_client(self.job.desc["RoleArn"])
        model_uri = None
        uploads = [(contract.OUTPUT_ARCHIVE, self.base_dir / "output" / "data")]
        if include_model:
            uploads.insert(0, (contract.MODEL_ARCHIVE, self.base_dir / "model"))
        for archive_name, source in uploads:
            archive = self.base_dir / archive_name
            tar_directory(source, archive)
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
        local = local_path(self.base_dir, config.get("LocalPath") or "/opt/ml/checkpoints", "checkpoints")
        local.mkdir(parents=True, exist_ok=True)
        bucket, prefix = parse_s3_uri(config["S3Uri"])
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        s3 = self.context.s3_client(self.job.desc["RoleArn"])
        try:
            if download:
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                    for item in page.get("Contents", []):
                        if not item["Key"].endswith("/"):
                            destination = local / relative_key(item["Key"], prefix)
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
        return local_path(self.base_dir, hook.get("LocalPath"), "output/tensors")

    def _upload_tree(self, source: Path, config: dict[str, Any] | None, suffix: str) -> None:
        if not config or not config.get("S3OutputPath") or not source.is_dir():
            return
        bucket, prefix = parse_s3_uri(config["S3OutputPath"])
        base = "/".join(part for part in (prefix.rstrip("/"), self.job.name, suffix) if part)
        s3 = self.context.s3_client(self.job.desc["RoleArn"])
        for path in sorted(source.rglob("*")):
            if path.is_file():
                s3.upload_file(str(path), bucket, f"{base}/{path.relative_to(source).as_posix()}")


def _signal_group(process: subprocess.Popen[str], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
