"""What the SageMaker backend's resource parts share, and the narrow interfaces the runners get.

``BackendContext`` holds the settings, the one lock that guards every resource record, the worker
threads, the per-thread S3 client and the event bus. ``TrainingJob``/``TuningJob`` are the records
the runners move through their statuses. The runners (``training.TrainingJobRunner``,
``tuning.TuningJobRunner``) see only ``TrainingRegistry``/``TuningRegistry``: the few calls they make,
never the backend's dictionaries or lock. This module imports no runner and no resource backend.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import boto3
import botocore.exceptions
from botocore.config import Config

from localcloud.environment.containerenv import base_python
from localcloud.faults.spec import FaultInjector
from localcloud.logs.shipper import LogShipper
from localcloud.sagemaker.events import EventBus, EventCallback
from localcloud.sagemaker.exceptions import ValidationException
from localcloud.shared import ACCOUNT_ID

logger = logging.getLogger("localcloud.sagemaker")

LogCallback = Callable[[str, str], None]


class RoleSessions(Protocol):
    """The account's roles as the emulator acts as them (localcloud.iam.proxy.IamProxy when IAM is on)."""

    def session_environment(self, role_arn: str, session: str) -> dict[str, str]: ...

    def assumable_by(self, role_arn: str, service: str) -> bool: ...


# The credentials every local S3 client used before IAM enforcement, and still uses with it off.
UNCHECKED_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
SAGEMAKER_PRINCIPAL = "sagemaker.amazonaws.com"
# The session name of the execution role's calls, as AWS names it in an AccessDeniedException:
# https://github.com/aws/amazon-sagemaker-feedback/issues/61 (".../assumed-role/<role>/SageMaker").
SAGEMAKER_SESSION = "SageMaker"


class Runner(Protocol):
    def run(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class TrainingJob:
    name: str
    desc: dict[str, Any]
    stop_requested: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    final_metrics: list[dict[str, Any]] = field(default_factory=list)
    runner: Runner | None = None


@dataclass
class TuningJob:
    name: str
    desc: dict[str, Any]
    trial_names: list[str] = field(default_factory=list)
    tuned: dict[str, dict[str, str]] = field(default_factory=dict)  # trial name -> tuned values
    stop_requested: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


DEBUGGER_ACCESS_ENV = "LOCALCLOUD_DEBUGGER_ACCESS"
DEBUGGER_ACCESS_CLOSED, DEBUGGER_ACCESS_OPEN = "closed", "open"


def debugger_access_from_env() -> str:
    """``closed`` (default: an account created after Debugger closed to new customers) or ``open``
    (an account that had Debugger before, or tests of DebuggerMode=builtin)."""
    value = os.environ.get(DEBUGGER_ACCESS_ENV, DEBUGGER_ACCESS_CLOSED).strip().lower()
    if value not in (DEBUGGER_ACCESS_CLOSED, DEBUGGER_ACCESS_OPEN):
        raise ValueError(f"{DEBUGGER_ACCESS_ENV}={value!r}: expected closed or open")
    return value


class BackendContext:
    """Settings, the lock, worker threads, S3 access and the event bus: what every resource part uses."""

    def __init__(
        self,
        state_dir: Path,
        region: str = "us-east-1",
        s3_endpoint_url: str | None = None,
        training_python: Path | None = None,
        on_event: EventCallback | None = None,
        on_log: LogCallback | None = None,
        max_concurrent_jobs: int | None = None,
        endpoint_start_timeout: float = 180.0,
        faults: FaultInjector | None = None,
        serverless_endpoint_events: bool | None = None,
        logs: LogShipper | None = None,
        iam: RoleSessions | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        # CloudWatch Logs for jobs' and endpoints' output (localcloud.logs); None: files only.
        self.logs = logs
        # IAM enforced (localcloud.iam): S3 calls of jobs and endpoints carry the execution role's
        # credentials, and a role the account does not have is refused at Create*. None: unchecked.
        self.iam = iam
        # Whether serverless endpoints send "SageMaker Endpoint State Change" events. AWS documents
        # them for real-time endpoints only, so by default they are not sent (the strict side);
        # LOCALCLOUD_SERVERLESS_ENDPOINT_EVENTS=on sends them as for instance endpoints.
        if serverless_endpoint_events is None:
            switch = os.environ.get("LOCALCLOUD_SERVERLESS_ENDPOINT_EVENTS", "off").strip().lower()
            if switch not in ("on", "off"):
                raise ValueError(f"LOCALCLOUD_SERVERLESS_ENDPOINT_EVENTS must be on or off, not {switch!r}")
            serverless_endpoint_events = switch == "on"
        self.serverless_endpoint_events = serverless_endpoint_events
        self.faults = faults  # localcloud.faults.spec: failed jobs and endpoint deployments, when asked for
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.region = region
        s3_url = s3_endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3")
        if not s3_url:
            # Never fall back to real AWS.
            raise ValueError(
                "s3_endpoint_url (or AWS_ENDPOINT_URL_S3) is required: the emulator only talks to local S3"
            )
        self.s3_endpoint_url = s3_url
        self.training_python = Path(training_python or base_python())
        self.on_log = on_log
        cap = max_concurrent_jobs or int(os.environ.get("LOCALCLOUD_MAX_TRAINING_JOBS", "2"))
        self.max_concurrent_jobs = max(1, cap)
        self.threads_per_job = max(1, (os.cpu_count() or 1) // self.max_concurrent_jobs)
        self.endpoint_start_timeout = endpoint_start_timeout
        self.max_parallel_training_jobs_limit = int(
            os.environ.get("LOCALCLOUD_MAX_PARALLEL_TRAINING_JOBS", "10")
        )
        self.debugger_access = debugger_access_from_env()
        self.s3_errors: tuple[type[BaseException], ...] = (
            botocore.exceptions.BotoCoreError,
            botocore.exceptions.ClientError,
        )
        self.lock = threading.RLock()  # guards every resource record of every part
        self._threads: list[threading.Thread] = []
        self._s3_local = threading.local()
        self.events = EventBus(region, on_event)

    def arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{ACCOUNT_ID}:{kind}/{name.lower()}"

    def role_environment(self, role_arn: str | None) -> dict[str, str]:
        """The credentials a job or endpoint acts with: its execution role's when IAM is enforced."""
        if self.iam is None or not role_arn:
            return dict(UNCHECKED_CREDENTIALS)
        return self.iam.session_environment(role_arn, SAGEMAKER_SESSION)

    def check_execution_role(self, role_arn: str) -> None:
        """Refuse a role SageMaker could not assume (one the account does not have, or whose trust
        policy leaves SageMaker out) with AWS's ValidationException text, as a Lambda's Create* call
        got it for a role that did not exist:
        https://github.com/awslabs/predictive-maintenance-using-machine-learning/issues/3."""
        if self.iam is not None and not self.iam.assumable_by(role_arn, SAGEMAKER_PRINCIPAL):
            raise ValidationException(
                f"Could not assume role {role_arn}. Please ensure that the role exists and allows "
                f"principal '{SAGEMAKER_PRINCIPAL}' to assume the role."
            )

    def s3_client(self, role_arn: str | None = None) -> Any:
        """A per-thread S3 client acting as ``role_arn`` (see role_environment)."""
        clients: dict[str | None, Any] = self._s3_local.__dict__.setdefault("clients", {})
        if role_arn not in clients:
            credentials = self.role_environment(role_arn)
            clients[role_arn] = boto3.client(
                "s3",
                endpoint_url=self.s3_endpoint_url,
                region_name=self.region,
                aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
                aws_session_token=credentials.get("AWS_SESSION_TOKEN"),
                config=Config(retries={"max_attempts": 3}),
            )
        return clients[role_arn]

    def spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        with self.lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def join_threads(self, timeout: float) -> None:
        for thread in list(self._threads):
            thread.join(timeout=timeout)

    def emit(self, detail_type: str, resource_arn: str, detail: dict[str, Any]) -> None:
        self.events.emit(detail_type, resource_arn, detail)

    def job_log_line(self, job_name: str, line: str) -> None:
        logger.debug("[%s] %s", job_name, line)
        if self.on_log:
            try:
                self.on_log(job_name, line)
            except Exception:
                logger.exception("on_log callback failed")


class TrainingRegistry(Protocol):
    """What a training job's runner may ask of the backend."""

    context: BackendContext

    def training_slot(self, job: TrainingJob) -> AbstractContextManager[None]: ...

    def set_secondary_status(self, job: TrainingJob, status: str, message: str) -> None: ...

    def finish_training_job(
        self,
        job: TrainingJob,
        status: str,
        secondary: str | None = None,
        failure_reason: str | None = None,
        model_uri: str | None = None,
        rules: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None: ...


class TuningRegistry(Protocol):
    """What a tuning job's runner may ask of the backend."""

    context: BackendContext

    def training_job(self, name: str) -> TrainingJob: ...

    def stop_trial(self, job: TrainingJob) -> None: ...

    def launch_trial(self, tuning_job: TuningJob, params: dict[str, Any], values: dict[str, str]) -> None: ...

    def trial_summary(self, tuning_job: TuningJob, trial_name: str) -> dict[str, Any]: ...

    def update_tuning_job(self, tuning_job: TuningJob, emit: bool, **fields: Any) -> None: ...
