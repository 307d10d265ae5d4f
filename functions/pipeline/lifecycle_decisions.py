"""The endpoint lifecycle's decisions: pure functions of its state and the endpoint (no I/O).

``offer_model`` (a model passed the gate), ``settle`` (what outcome the endpoint shows for our
request), ``after_outcome``, ``next_action`` (the one step that moves the endpoint on),
``with_request``/``without_request`` and ``cleanup_plan``. pipeline.endpoint_lifecycle does the I/O
around them; docs/deploy.md ("Deployment") explains the policy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from dogclf import contract
from pipeline.lifecycle_state import (
    BUSY_STATES,
    DELETING,
    FAILED,
    IN_SERVICE,
    OUT_OF_SERVICE,
    OUTCOME_FAILED,
    OUTCOME_IN_SERVICE,
    OUTCOME_ROLLED_BACK,
    STALE_REQUEST_SECONDS,
    UPDATE_ROLLBACK_FAILED,
    Action,
    EndpointView,
    LifecycleState,
    Model,
    Offer,
    Outcome,
    Request,
    job_of_config,
)


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
