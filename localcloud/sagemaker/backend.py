"""The emulator's backend: one object per resource family behind SageMaker's operation names.

Like moto's services, the backend is split by resource: ``TrainingJobs`` (training_jobs.py),
``TuningJobs`` (tuning_jobs.py), ``Models`` (models.py), ``EndpointConfigs`` (endpoint_configs.py),
``Endpoints`` (endpoints.py), ``Invocations`` (invocations.py: InvokeEndpoint), ``Tags`` (tags.py),
sharing a ``BackendContext`` (registry.py: settings, the lock, threads, S3, the event bus of
events.py). ``operation("create_training_job")`` finds the
part that implements an operation; the protocol layer (responses.py) dispatches through it. State
lives in memory (and job files under ``state_dir``): a restarted emulator starts empty.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from localcloud.sagemaker.endpoint_configs import EndpointConfigs
from localcloud.sagemaker.endpoints import Endpoints
from localcloud.sagemaker.invocations import Invocations
from localcloud.sagemaker.models import Models
from localcloud.sagemaker.registry import BackendContext
from localcloud.sagemaker.tags import Tags
from localcloud.sagemaker.training_jobs import TrainingJobs
from localcloud.sagemaker.tuning_jobs import TuningJobs


class SageMakerBackend:
    def __init__(self, context: BackendContext) -> None:
        self.context = context
        self.training = TrainingJobs(self.context)
        self.tuning = TuningJobs(self.context, self.training)
        self.models = Models(self.context)
        self.endpoint_configs = EndpointConfigs(self.context, self.models)
        self.endpoints = Endpoints(self.context, self.models, self.endpoint_configs)
        self.invocations = Invocations(self.context, self.endpoints, self.endpoint_configs)
        self.tags = Tags(self.context)
        # The JSON 1.1 operations' parts; InvokeEndpoint is sagemaker-runtime's (runtime.py).
        self._parts: tuple[object, ...] = (
            self.training,
            self.tuning,
            self.models,
            self.endpoint_configs,
            self.endpoints,
            self.tags,
        )

    def operation(self, method_name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """The bound method implementing an operation (snake_case of its name); AttributeError if none."""
        for part in self._parts if not method_name.startswith("_") else ():
            handler = getattr(part, method_name, None)
            if handler is not None:
                return handler
        raise AttributeError(f"no backend part implements {method_name}")

    def invoke_endpoint(
        self, name: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        return self.invocations.invoke_endpoint(name, body, headers)

    def wait_for_events(self) -> None:
        """Block until every event emitted so far has been handed to on_event."""
        self.context.events.wait()

    def shutdown(self) -> None:
        """Stop every job and endpoint process (jobs end Stopped), then the event thread."""
        with self.context.lock:
            jobs = [job for job in self.training.jobs.values() if not job.done.is_set()]
            tunings = list(self.tuning.jobs.values())
        servers = self.endpoints.servers()
        for tuning_job in tunings:
            tuning_job.stop_requested.set()
        for job in jobs:
            job.stop_requested.set()
            if job.runner:
                job.runner.stop()
        for server in servers:
            server.stop()
        self.context.join_threads(timeout=30)
        self.context.events.close()
