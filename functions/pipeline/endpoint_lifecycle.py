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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dogclf import contract
from pipeline.adapters.notify import Publisher
from pipeline.adapters.s3 import ObjectStore
from pipeline.adapters.sagemaker import JobService
from pipeline.errors import TransientError
from pipeline.powertools import logger

if TYPE_CHECKING:
    from pipeline.adapters.endpoint_state import LifecycleStateStore
    from pipeline.settings import Settings

IN_SERVICE, FAILED, DELETING = "InService", "Failed", "Deleting"
UPDATE_ROLLBACK_FAILED, OUT_OF_SERVICE = "UpdateRollbackFailed", "OutOfService"
# Mid-change: no request is accepted until the endpoint leaves these (its next event says when).
BUSY_STATES = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", DELETING})
# A request written down but not visible on the endpoint after this long never reached SageMaker
# (the invocation died between the two): it is dropped and the model stays pending.
STALE_REQUEST_SECONDS = 60.0
OUTCOME_IN_SERVICE, OUTCOME_ROLLED_BACK, OUTCOME_FAILED = "in-service", "rolled-back", "failed"
CAS_ATTEMPTS = 5


def normalize_status(status: str) -> str:
    """EndpointStatus as DescribeEndpoint spells it. Events spell it IN_SERVICE, ROLLING_BACK, ...
    (AWS's documented example), Describe InService, RollingBack: both are accepted."""
    if "_" in status or status.isupper():
        return "".join(part.capitalize() for part in status.split("_"))
    return status


def job_of_config(config_name: str) -> str:
    return config_name.removesuffix(contract.ENDPOINT_CONFIG_SUFFIX)


def epoch_seconds(value: Any) -> float:
    """A Describe datetime, an event's epoch milliseconds, or epoch seconds, as epoch seconds."""
    if isinstance(value, datetime):
        return value.timestamp()
    number = float(value or 0)
    return number / 1000 if number > 1e11 else number


@dataclass(frozen=True)
class Model:
    """A model that passed the gate: its training job, endpoint config and the job's CreationTime."""

    job: str
    config: str
    created: float

    def to_item(self) -> dict[str, Any]:
        return {"job": self.job, "config": self.config, "created": self.created}

    @classmethod
    def from_item(cls, item: dict[str, Any] | None) -> Model | None:
        if not item:
            return None
        return cls(str(item["job"]), str(item["config"]), float(item["created"]))


@dataclass(frozen=True)
class Request:
    """A Create/UpdateEndpoint the pipeline sent, kept until the endpoint's outcome is recorded."""

    model: Model
    action: str  # "create" | "update"
    previous_config: str | None
    at: float

    def to_item(self) -> dict[str, Any]:
        return {
            "model": self.model.to_item(),
            "action": self.action,
            "previous_config": self.previous_config or "",
            "at": self.at,
        }

    @classmethod
    def from_item(cls, item: dict[str, Any] | None) -> Request | None:
        if not item:
            return None
        model = Model.from_item(item["model"])
        assert model is not None
        return cls(
            model, str(item["action"]), str(item.get("previous_config") or "") or None, float(item["at"])
        )


@dataclass(frozen=True)
class LifecycleState:
    pending: Model | None = None  # the newest passed model not yet handed to the endpoint
    inflight: Request | None = None  # the change SageMaker is making for us
    serving: Model | None = None  # the last model the endpoint came up InService on
    newest_created: float = 0.0  # CreationTime of the newest model ever handed to the endpoint
    recreate: bool = False  # we deleted a Failed endpoint: create it again once it is gone
    last_settled: str = ""  # the endpoint state whose outcome was recorded last (duplicates ignored)

    def to_item(self) -> dict[str, Any]:
        return {
            "pending": self.pending.to_item() if self.pending else None,
            "inflight": self.inflight.to_item() if self.inflight else None,
            "serving": self.serving.to_item() if self.serving else None,
            "newest_created": self.newest_created,
            "recreate": self.recreate,
            "last_settled": self.last_settled,
        }

    @classmethod
    def from_item(cls, item: dict[str, Any] | None) -> LifecycleState:
        item = item or {}
        return cls(
            pending=Model.from_item(item.get("pending")),
            inflight=Request.from_item(item.get("inflight")),
            serving=Model.from_item(item.get("serving")),
            newest_created=float(item.get("newest_created") or 0),
            recreate=bool(item.get("recreate")),
            last_settled=str(item.get("last_settled") or ""),
        )


@dataclass(frozen=True)
class EndpointView:
    status: str
    config: str
    failure_reason: str | None
    last_modified: float
    # True: a serverless variant (CurrentServerlessConfig), False: instances; None: not known yet
    # (DescribeEndpoint lists no ProductionVariants while the endpoint is Creating).
    serverless: bool | None = None

    @classmethod
    def from_describe(cls, description: dict[str, Any] | None) -> EndpointView | None:
        if description is None:
            return None
        variants = description.get("ProductionVariants") or []
        return cls(
            status=normalize_status(str(description.get("EndpointStatus", ""))),
            config=str(description.get("EndpointConfigName", "")),
            failure_reason=description.get("FailureReason") or None,
            last_modified=epoch_seconds(description.get("LastModifiedTime")),
            serverless=any("CurrentServerlessConfig" in v for v in variants) if variants else None,
        )

    @property
    def key(self) -> str:
        return f"{self.status}@{self.config}@{self.last_modified:.3f}"


@dataclass(frozen=True)
class Outcome:
    job: str
    kind: str  # OUTCOME_*
    message: str
    endpoint_config: str
    failure_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.kind,
            "message": self.message,
            "endpoint_config": self.endpoint_config,
            "failure_reason": self.failure_reason,
        }


@dataclass(frozen=True)
class Action:
    kind: str  # "none" | "wait" | "create" | "update" | "delete" | "wait-deleted" | "attention"
    reason: str
    model: Model | None = None


@dataclass(frozen=True)
class Offer:
    accepted: bool
    state: LifecycleState
    superseded_by: str | None = None


# ----------------------------------------------------------------------------------- pure decisions


def offer_model(state: LifecycleState, model: Model) -> Offer:
    """The passed model becomes pending if it is the newest seen (a redelivery of the pending one is
    accepted again); an older one is superseded by the newer pending or deployed model."""
    if state.pending and state.pending.job == model.job:
        return Offer(True, state)
    handed = (
        state.inflight.model.job if state.inflight else None,
        state.serving.job if state.serving else None,
    )
    if model.job in handed:  # a redelivery after it was handed to the endpoint
        return Offer(False, state, None)
    if state.pending and state.pending.created >= model.created:
        return Offer(False, state, state.pending.job)
    if state.newest_created >= model.created:
        newer = state.inflight.model.job if state.inflight else state.serving.job if state.serving else "?"
        return Offer(False, state, newer)
    return Offer(True, replace(state, pending=model))


def settle(endpoint: EndpointView | None, state: LifecycleState, now: float) -> tuple[Outcome | None, bool]:
    """(the outcome of our request, if the endpoint now shows one; whether the request is stale)."""
    request = state.inflight
    if endpoint is not None and endpoint.status == FAILED:
        if endpoint.key == state.last_settled:
            return None, False
        job = request.model.job if request else job_of_config(endpoint.config)
        reason = endpoint.failure_reason or "no FailureReason given"
        return Outcome(job, OUTCOME_FAILED, f"failed: {reason}", endpoint.config, reason), False
    if request is None:
        return None, False
    if endpoint is None:
        # Gone (or never created): the request did not take, unless it is still on its way.
        return None, now - request.at > STALE_REQUEST_SECONDS
    job = request.model.job
    if endpoint.status == IN_SERVICE:
        if endpoint.config == request.model.config:
            return Outcome(job, OUTCOME_IN_SERVICE, f"InService on {job}'s model", endpoint.config), False
        if endpoint.last_modified >= request.at:
            reason = endpoint.failure_reason or "no FailureReason given"
            message = f"rolled back to {endpoint.config}: {reason}"
            return Outcome(job, OUTCOME_ROLLED_BACK, message, endpoint.config, reason), False
        return None, now - request.at > STALE_REQUEST_SECONDS
    if endpoint.status == UPDATE_ROLLBACK_FAILED:
        reason = endpoint.failure_reason or "update and its rollback failed"
        return Outcome(job, OUTCOME_FAILED, f"failed: {reason}", endpoint.config, reason), False
    return None, False


def after_outcome(state: LifecycleState, outcome: Outcome, endpoint: EndpointView) -> LifecycleState:
    """The state once ``outcome`` is recorded. A model that failed or rolled back is not retried."""
    request = state.inflight
    settled_model = request.model if request and request.model.job == outcome.job else None
    pending = state.pending
    if pending and pending.job == outcome.job:
        pending = None
    serving = state.serving
    if outcome.kind == OUTCOME_IN_SERVICE:
        serving = settled_model or serving
    elif outcome.kind == OUTCOME_FAILED and endpoint.status == FAILED:
        # The Failed endpoint is recreated from the models that did not fail.
        failed = {endpoint.config, settled_model.config if settled_model else ""}
        pending = pending if pending and pending.config not in failed else None
        serving = serving if serving and serving.config not in failed else None
    return replace(
        state,
        pending=pending,
        inflight=None if settled_model or request is None else state.inflight,
        serving=serving,
        last_settled=endpoint.key,
    )


def mode_switch(endpoint: EndpointView, endpoint_mode: str | None) -> bool:
    """Whether the endpoint runs in the other EndpointMode than the stack now asks for. UpdateEndpoint
    cannot switch it: "Updating a real-time inference endpoint to either an on-demand serverless
    endpoint or a serverless endpoint with provisioned concurrency is currently not supported"
    (https://docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints-update.html); the other
    direction is not documented either way, so it is treated the same (the strict side)."""
    if endpoint_mode is None or endpoint.serverless is None:
        return False
    return endpoint.serverless != (endpoint_mode == "serverless")


def next_action(
    endpoint: EndpointView | None, state: LifecycleState, endpoint_mode: str | None = None
) -> Action:
    """The one step that moves the endpoint towards the newest passed model. ``endpoint_mode`` (the
    stack's EndpointMode) decides whether a pending model needs the endpoint deleted and recreated."""
    if state.inflight is not None:
        return Action("wait", f"waiting for the endpoint to finish {state.inflight.model.job}")
    if endpoint is None:
        candidate = state.pending or (state.serving if state.recreate else None)
        if candidate is None:
            return Action("none", "no endpoint and no model to deploy")
        return Action("create", f"create with {candidate.job}", candidate)
    if endpoint.status == FAILED:
        return Action("delete", f"endpoint Failed ({endpoint.failure_reason}); delete and recreate")
    if endpoint.status == DELETING:
        return Action("wait-deleted", "endpoint Deleting")
    if endpoint.status in BUSY_STATES:
        return Action("wait", f"endpoint {endpoint.status}")
    if endpoint.status in (UPDATE_ROLLBACK_FAILED, OUT_OF_SERVICE):
        return Action("attention", f"endpoint {endpoint.status}: needs a person (see docs/deploy.md)")
    if state.pending and state.pending.config != endpoint.config:
        if mode_switch(endpoint, endpoint_mode):
            # Deleted with recreate set: once it is gone, the pending model is created afresh.
            return Action("delete", f"EndpointMode is now {endpoint_mode}; delete and recreate")
        return Action("update", f"update to {state.pending.job}", state.pending)
    return Action("none", "endpoint serves the newest model")


def with_request(state: LifecycleState, request: Request) -> LifecycleState:
    pending = None if state.pending and state.pending.job == request.model.job else state.pending
    return replace(
        state,
        pending=pending,
        inflight=request,
        newest_created=max(state.newest_created, request.model.created),
        recreate=False,
    )


def without_request(state: LifecycleState, request: Request) -> LifecycleState:
    """Undo ``with_request`` after SageMaker refused it: the model is pending again (if still newest)."""
    if state.inflight != request:
        return state
    pending = state.pending
    if pending is None or pending.created < request.model.created:
        pending = request.model
    return replace(state, inflight=None, pending=pending)


def cleanup_plan(
    configs: Iterable[tuple[str, float]],
    models: Iterable[tuple[str, float]],
    keep: int,
    protected_configs: Iterable[str],
    prefix: str,
) -> tuple[list[str], list[str]]:
    """(endpoint configs, models) to delete: only this pipeline's, all but the ``keep`` newest, never
    a protected one (what the endpoint serves, the pending model, the request in flight)."""
    protected_jobs = {job_of_config(name) for name in protected_configs if name}

    def ours(name: str) -> bool:
        return contract.is_pipeline_training_job(name, prefix)

    def old(rows: Iterable[tuple[str, float]], job: Callable[[str], str]) -> list[str]:
        mine = sorted(((name, created) for name, created in rows if ours(job(name))), key=lambda r: -r[1])
        return [name for name, _ in mine[keep:] if job(name) not in protected_jobs]

    return old(configs, job_of_config), old(models, lambda name: name)


# ----------------------------------------------------------------------------------------------- I/O


@dataclass
class EndpointLifecycle:
    settings: Settings
    jobs: JobService
    store: LifecycleStateStore
    s3: ObjectStore
    notifier: Publisher
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
        request = Request(action.model, action.kind, endpoint.config if endpoint else None, self.clock())
        # Written before the call: whoever reads the state next knows a change is on its way.
        if not self.store.save(with_request(state, request), version):
            return None
        try:
            if action.kind == "create":
                accepted = self.jobs.create_endpoint(self.endpoint_name, action.model.config)
            else:
                accepted = self.jobs.update_endpoint_if_idle(self._update_request(action.model.config))
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

    def _update_request(self, config_name: str) -> dict[str, Any]:
        from pipeline.deploy import update_endpoint_request

        return update_endpoint_request(config_name, self.settings)

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
    """One endpoint state-change event: record the outcome, take the next step, clean up."""
    if endpoint_name != lifecycle.endpoint_name:
        logger.info("ignoring another endpoint's event", extra={"endpoint": endpoint_name})
        return {"ignored": endpoint_name, "reason": "not this pipeline's endpoint"}
    result: dict[str, Any] = {"endpoint_name": endpoint_name, "event_status": normalize_status(status)}
    result["action"] = lifecycle.reconcile(deadline=deadline)
    endpoint, state = lifecycle.last_endpoint, lifecycle.last_state
    if result["action"] == "in service" and endpoint is not None and state.inflight is None:
        result["cleaned_up"] = lifecycle.cleanup(endpoint, state)
    result["steps"] = list(lifecycle.actions)
    return result


def _log(request: Request) -> dict[str, Any]:
    return {"job": request.model.job, "action": request.action, "at": request.at}
