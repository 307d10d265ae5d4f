"""The endpoint's lifecycle, driven by its own state-change events (docs/deploy.md, "Deployment").

A model that passes the gate is *offered*: it becomes the pending model if it is newer (by its training
job's CreationTime, not by arrival order) than every model offered before. ``reconcile`` then compares
what the endpoint is doing (DescribeEndpoint) with what the pipeline wants (one state item in the
idempotency table) and takes the one step that moves it on: create the endpoint, update it to the
pending model, delete it when it is Failed, or wait for the next state-change event. When a change
that the pipeline requested ends, the real outcome (InService on the model, rolled back to the old
config, failed with its reason) goes into ``decisions/<job>.json`` and to the topic.

The decisions (``settle``, ``next_action``, ``offer_model``, ``cleanup_plan``) are pure functions
of the state and the endpoint; ``EndpointLifecycle`` does the I/O. Every state change is a
compare-and-swap on the item's version, so two invocations (two passes close together, or a pass
and a state event) cannot both act on the same state: the loser re-reads and decides again.

Nothing loops forever: a model whose deployment failed or rolled back is dropped, not retried, and a
Failed endpoint is recreated only from models that have not failed, so each failure removes one
candidate. Errors: AWS errors propagate (transient: Lambda retries the event); "already exists" and
"in progress" answers of Create/UpdateEndpoint mean another change got there first, so the model stays
pending and the endpoint's next event deploys it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from dogclf import contract
from pipeline.adapters.endpoint_state import EndpointStateStore
from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Store
from pipeline.adapters.sagemaker import SageMakerJobs
from pipeline.endpoint_requests import update_endpoint_request
from pipeline.errors import TransientError
from pipeline.lifecycle_decisions import (
    after_outcome,
    cleanup_plan,
    next_action,
    offer_model,
    settle,
    with_request,
    without_request,
)
from pipeline.lifecycle_state import (
    CAS_ATTEMPTS,
    FAILED,
    IN_SERVICE,
    OUTCOME_FAILED,
    OUTCOME_IN_SERVICE,
    OUTCOME_ROLLED_BACK,
    Action,
    EndpointView,
    LifecycleState,
    Model,
    Outcome,
    Request,
    RequestAction,
    normalize_status,
)
from pipeline.powertools import logger
from pipeline.settings import EndpointSettings


@dataclass
class EndpointLifecycle:
    settings: EndpointSettings
    jobs: SageMakerJobs
    store: EndpointStateStore
    s3: S3Store
    notifier: Notifier
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    actions: list[str] = field(default_factory=list)  # what this invocation did, in order (logs, tests)
    last_endpoint: EndpointView | None = None  # what reconcile saw last, and the state it left
    last_state: LifecycleState = field(default_factory=LifecycleState)

    @property
    def endpoint_name(self) -> str:
        return self.settings.endpoint_name

    def describe(self) -> EndpointView | None:
        return EndpointView.from_describe(self.jobs.describe_endpoint(self.endpoint_name))

    def offer(self, model: Model) -> str:
        """Record a passed model as pending (newest wins), then move the endpoint on. Returns what
        happened, for the gate's decision document."""
        for _ in range(CAS_ATTEMPTS):
            state, version = self.store.load()
            result = offer_model(state, model)
            if not result.accepted:
                if result.superseded_by is None:
                    return "already handed to the endpoint"
                return f"superseded by {result.superseded_by}"
            if result.state == state or self.store.save(result.state, version):
                break
        else:
            raise TransientError("endpoint state kept changing while recording the pending model")
        return self.reconcile(deadline=None)

    def reconcile(self, deadline: float | None) -> str:
        """Record the outcome the endpoint shows, then take the next step. With a deadline (a state
        event), an endpoint being deleted is waited for until then, so it can be recreated."""
        for _ in range(CAS_ATTEMPTS):
            state, version = self.store.load()
            endpoint = self.describe()
            outcome, stale = settle(endpoint, state, self.clock())
            if outcome is not None and endpoint is not None:
                new_state = after_outcome(state, outcome, endpoint)
                self.record_outcome(outcome)  # before the state: a crash repeats it, never loses it
                if not self.store.save(new_state, version):
                    continue
                state, version = new_state, version + 1
            elif stale and state.inflight is not None:
                new_state = without_request(state, state.inflight)
                logger.warning("dropping a request that never reached SageMaker", extra=_log(state.inflight))
                if not self.store.save(new_state, version):
                    continue
                state, version = new_state, version + 1
            action = next_action(endpoint, state, self.settings.endpoint_mode)
            self.last_endpoint, self.last_state = endpoint, state
            self.actions.append(action.kind)
            logger.info("endpoint lifecycle step", extra={"action": action.kind, "reason": action.reason})
            if action.kind in ("create", "update"):
                assert action.model is not None
                done = self._request(action, endpoint, state, version)
                if done is None:
                    continue  # the state changed under us: decide again
                return done
            if action.kind == "delete":
                if not self.store.save(replace(state, recreate=True), version):
                    continue
                self.jobs.delete_endpoint(self.endpoint_name)
                if endpoint is not None and endpoint.status == FAILED:
                    return "deleting the Failed endpoint to recreate it"
                return f"deleting the endpoint to recreate it ({action.reason})"
            if action.kind == "wait-deleted" and deadline is not None:
                self._wait_until_deleted(deadline)
                continue
            if action.kind == "none" and endpoint is not None and endpoint.status == IN_SERVICE:
                return "in service"
            return f"pending ({action.reason})" if state.pending else action.reason
        raise TransientError("endpoint state kept changing; retrying the event")

    def _request(
        self, action: Action, endpoint: EndpointView | None, state: LifecycleState, version: int
    ) -> str | None:
        assert action.model is not None
        kind: RequestAction = "create" if action.kind == "create" else "update"
        request = Request(action.model, kind, endpoint.config if endpoint else None, self.clock())
        # Written before the call: whoever reads the state next knows a change is on its way.
        if not self.store.save(with_request(state, request), version):
            return None
        try:
            if kind == "create":
                accepted = self.jobs.create_endpoint(self.endpoint_name, action.model.config)
            else:
                accepted = self.jobs.update_endpoint_if_idle(
                    update_endpoint_request(action.model.config, self.settings)
                )
        except Exception:
            self._undo(request)  # transient: the retry finds the model pending again
            raise
        if not accepted:
            # Another change got there first ("already exists", "in progress"): stay pending; the
            # endpoint's next state event deploys the newest model.
            self._undo(request)
            return f"pending ({action.kind} refused: endpoint busy)"
        return f"{action.kind} requested"

    def _undo(self, request: Request) -> None:
        for _ in range(CAS_ATTEMPTS):
            state, version = self.store.load()
            if self.store.save(without_request(state, request), version):
                return

    def _wait_until_deleted(self, deadline: float) -> None:
        while self.jobs.describe_endpoint(self.endpoint_name) is not None:
            if self.clock() + 10 > deadline:
                # Transient: Lambda retries the event, and the wait goes on there.
                raise TransientError(f"endpoint {self.endpoint_name} still Deleting")
            self.sleep(5)

    def record_outcome(self, outcome: Outcome) -> None:
        """decisions/<job>.json gets the real outcome; the topic says it in the subject."""
        key = f"decisions/{outcome.job}.json"
        document: dict[str, Any]
        if self.s3.exists(self.settings.artifacts_bucket, key):
            document = self.s3.get_json(self.settings.artifacts_bucket, key)
        else:
            document = {"training_job_name": outcome.job, "endpoint_name": self.endpoint_name}
        document["endpoint_outcome"] = outcome.to_dict()
        self.s3.put_json(self.settings.artifacts_bucket, key, document)
        subject = {
            OUTCOME_IN_SERVICE: f"Model InService: {outcome.job}",
            OUTCOME_ROLLED_BACK: f"Model rolled back: {outcome.job}",
            OUTCOME_FAILED: f"Model deploy failed: {outcome.job}",
        }[outcome.kind]
        self.notifier.publish(subject, document)

    def cleanup(self, endpoint: EndpointView, state: LifecycleState) -> dict[str, list[str]]:
        """Delete old endpoint configs and models, keeping the newest ``endpoint_keep_configs``."""
        protected = {
            endpoint.config,
            state.pending.config if state.pending else "",
            state.inflight.model.config if state.inflight else "",
            state.inflight.previous_config or "" if state.inflight else "",
            state.serving.config if state.serving else "",
        }
        prefix = self.settings.job_name_prefix
        name_filter = f"{prefix}{contract.TRAINING_INFIX}"
        configs, models = cleanup_plan(
            self.jobs.list_endpoint_configs(name_filter),
            self.jobs.list_models(name_filter),
            self.settings.endpoint_keep_configs,
            protected,
            prefix,
        )
        for name in configs:
            self.jobs.delete_endpoint_config(name)
        for name in models:
            self.jobs.delete_model(name)
        if configs or models:
            logger.info(
                "old endpoint configs and models deleted", extra={"configs": configs, "models": models}
            )
        return {"configs": configs, "models": models}


def on_endpoint_state(
    endpoint_name: str, status: str, lifecycle: EndpointLifecycle, deadline: float
) -> dict[str, Any]:
    """One endpoint state-change event: record the outcome, take the next step, clean up. The handler
    passes only this pipeline's endpoint (EndpointSettings.endpoint_name)."""
    result: dict[str, Any] = {"endpoint_name": endpoint_name, "event_status": normalize_status(status)}
    result["action"] = lifecycle.reconcile(deadline=deadline)
    endpoint, state = lifecycle.last_endpoint, lifecycle.last_state
    if result["action"] == "in service" and endpoint is not None and state.inflight is None:
        result["cleaned_up"] = lifecycle.cleanup(endpoint, state)
    result["steps"] = list(lifecycle.actions)
    return result


def _log(request: Request) -> dict[str, Any]:
    return {"job": request.model.job, "action": request.action, "at": request.at}
