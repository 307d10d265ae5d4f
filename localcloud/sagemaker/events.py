"""The emulator's event bus: SageMaker state changes as EventBridge events, delivered in order.

Every status change is published as an EventBridge-shaped event (``"source": "aws.sagemaker"``,
detail = the Describe shape with times in epoch milliseconds and the resource's tags as a map). One
thread delivers them, so a subscriber sees each resource's events in the order they happened.
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from localcloud.shared import ACCOUNT_ID

logger = logging.getLogger("localcloud.sagemaker")

EventCallback = Callable[[dict[str, Any]], None]


class EventBus:
    def __init__(self, region: str, on_event: EventCallback | None) -> None:
        self.region = region
        self.on_event = on_event
        self._lock = threading.Lock()
        self._tags: dict[str, dict[str, str]] = {}  # resource ARN -> tags given at creation
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._dispatch, name="sagemaker-events", daemon=True)
        self._thread.start()

    def remember_tags(self, arn: str, params: dict[str, Any]) -> None:
        with self._lock:
            self._tags[arn] = {tag["Key"]: tag.get("Value", "") for tag in params.get("Tags") or []}

    def tags_of(self, arn: str) -> dict[str, str]:
        with self._lock:
            return dict(self._tags.get(arn, {}))

    def update_tags(self, arn: str, added: dict[str, str], removed: list[str]) -> None:
        """AddTags/DeleteTags: later events carry the resource's tags as they now are."""
        with self._lock:
            tags = self._tags.setdefault(arn, {})
            tags.update(added)
            for key in removed:
                tags.pop(key, None)

    def emit(self, detail_type: str, resource_arn: str, detail: dict[str, Any]) -> None:
        with self._lock:
            tags = dict(self._tags.get(resource_arn, {}))
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": "aws.sagemaker",
            "account": ACCOUNT_ID,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [resource_arn],
            # AWS's state-change events carry the resource's tags as a map next to the Describe fields.
            "detail": times_to_millis({**copy.deepcopy(detail), "Tags": tags}),
        }
        if "EndpointStatus" in event["detail"]:
            # Endpoint events spell the status IN_SERVICE, UPDATING, ... (AWS's documented example),
            # where DescribeEndpoint says InService, Updating.
            event["detail"]["EndpointStatus"] = event_status(event["detail"]["EndpointStatus"])
        self._events.put(event)

    def _dispatch(self) -> None:
        # One thread, so subscribers see each resource's events in the order they happened.
        while True:
            event = self._events.get()
            try:
                if event is None:
                    return
                if self.on_event:
                    self.on_event(event)
            except Exception:
                logger.exception("on_event callback failed for %s", event and event.get("detail-type"))
            finally:
                self._events.task_done()

    def wait(self) -> None:
        """Block until every event emitted so far has been handed to on_event."""
        self._events.join()

    def close(self) -> None:
        self._events.put(None)
        self._thread.join(timeout=10)


def event_status(status: str) -> str:
    """InService -> IN_SERVICE, UpdateRollbackFailed -> UPDATE_ROLLBACK_FAILED."""
    return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(status)).upper()


def times_to_millis(value: Any, key: str = "") -> Any:
    """Events carry times as epoch milliseconds (as AWS's examples show), Describe as seconds."""
    if isinstance(value, dict):
        return {k: times_to_millis(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [times_to_millis(item, key) for item in value]
    if (
        isinstance(value, float | int)
        and not isinstance(value, bool)
        and (key.endswith("Time") or key == "Timestamp")
    ):
        return int(value * 1000)
    return value
