"""The endpoint lifecycle's state and the values its decisions pass around (no I/O, no AWS).

``LifecycleState`` is what the idempotency table's state item holds (``to_item``/``from_item`` are
its JSON form, written by pipeline.adapters.endpoint_state); ``EndpointView`` is the part of
DescribeEndpoint the decisions read. Both the pure decisions (pipeline.lifecycle_decisions) and the
DynamoDB adapter import this module, and it imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, cast

from dogclf import contract

IN_SERVICE, FAILED, DELETING = "InService", "Failed", "Deleting"
UPDATE_ROLLBACK_FAILED, OUT_OF_SERVICE = "UpdateRollbackFailed", "OutOfService"
# Mid-change: no request is accepted until the endpoint leaves these (its next event says when).
BUSY_STATES = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", DELETING})
# A request written down but not visible on the endpoint after this long never reached SageMaker
# (the invocation died between the two): it is dropped and the model stays pending.
STALE_REQUEST_SECONDS = 60.0
OutcomeKind = Literal["in-service", "rolled-back", "failed"]
OUTCOME_IN_SERVICE: Final = "in-service"
OUTCOME_ROLLED_BACK: Final = "rolled-back"
OUTCOME_FAILED: Final = "failed"
# The one step next_action picks; EndpointLifecycle.reconcile branches on it.
ActionKind = Literal["none", "wait", "create", "update", "delete", "wait-deleted", "attention"]
RequestAction = Literal["create", "update"]
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
    action: RequestAction
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
        action = str(item["action"])
        if action not in ("create", "update"):
            raise ValueError(f"endpoint lifecycle state: unknown request action {action!r}")
        previous = str(item.get("previous_config") or "") or None
        return cls(model, cast(RequestAction, action), previous, float(item["at"]))


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
    kind: OutcomeKind
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
    kind: ActionKind
    reason: str
    model: Model | None = None


@dataclass(frozen=True)
class Offer:
    accepted: bool
    state: LifecycleState
    superseded_by: str | None = None
