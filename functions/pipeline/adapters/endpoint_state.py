"""The endpoint lifecycle's state: one item in the idempotency table, changed by compare-and-swap.

Item ``{"id": "endpoint-lifecycle#<endpoint>", "version": N, "state": "<json>"}``, no ``expiration``
(the table's TTL attribute), so it never expires. Every save is conditional on the version read, so
two invocations that read the same state cannot both write their decision (the loser re-reads).
The lifecycle talks to the ``LifecycleStateStore`` Protocol; ``EndpointStateStore`` (DynamoDB) is the
one implementation.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.adapters.aws import client, error_code

if TYPE_CHECKING:
    from pipeline.endpoint_lifecycle import LifecycleState


class LifecycleStateStore(Protocol):
    """One endpoint's lifecycle state with a version for compare-and-swap. Store errors (throttling,
    5xx: transient) propagate; a lost race is a value (save returns False), never an error."""

    def load(self) -> tuple[LifecycleState, int]:
        """(state, version); (an empty LifecycleState, 0) when nothing was saved yet. Reads are
        consistent: a save that returned True is seen."""
        ...

    def save(self, state: LifecycleState, version: int) -> bool:
        """Write ``state`` if the stored version is still ``version``; False when someone else wrote
        first (the caller re-reads and decides again)."""
        ...


class EndpointStateStore:
    """The lifecycle state as one DynamoDB item, behind LifecycleStateStore."""

    def __init__(self, table: str, endpoint_name: str, dynamodb_client: Any | None = None) -> None:
        self.table = table
        self.key = {"id": {"S": f"endpoint-lifecycle#{endpoint_name}"}}
        self.client = dynamodb_client or client("dynamodb")

    def load(self) -> tuple[LifecycleState, int]:
        from pipeline.endpoint_lifecycle import LifecycleState

        item = self.client.get_item(TableName=self.table, Key=self.key, ConsistentRead=True).get("Item")
        if not item:
            return LifecycleState(), 0
        return LifecycleState.from_item(json.loads(item["state"]["S"])), int(item["version"]["N"])

    def save(self, state: LifecycleState, version: int) -> bool:
        """Write ``state`` if the item is still at ``version``; False when someone else wrote first."""
        condition = "attribute_not_exists(id)" if version == 0 else "version = :read"
        values = {} if version == 0 else {":read": {"N": str(version)}}
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    **self.key,
                    "version": {"N": str(version + 1)},
                    "state": {"S": json.dumps(state.to_item(), sort_keys=True)},
                },
                ConditionExpression=condition,
                **({"ExpressionAttributeValues": values} if values else {}),
            )
        except Exception as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True
