"""The endpoint lifecycle's state: one item in the idempotency table, changed by compare-and-swap.

Item ``{"id": "endpoint-lifecycle#<endpoint>", "version": N, "state": "<json>"}``, no ``expiration``
(the table's TTL attribute), so it never expires. Every save is conditional on the version read, so
two invocations that read the same state cannot both write their decision (the loser re-reads).
Store errors (throttling, 5xx: transient) propagate; a lost race is a value (``save`` returns False),
never an error. The state's JSON form is pipeline.lifecycle_state's ``to_item``/``from_item``.
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.adapters.aws import client, error_code
from pipeline.lifecycle_state import LifecycleState


class EndpointStateStore:
    """The lifecycle state as one DynamoDB item."""

    def __init__(self, table: str, endpoint_name: str, dynamodb_client: Any | None = None) -> None:
        self.table = table
        self.key = {"id": {"S": f"endpoint-lifecycle#{endpoint_name}"}}
        self.client = dynamodb_client or client("dynamodb")

    def load(self) -> tuple[LifecycleState, int]:
        """(state, version); (an empty LifecycleState, 0) when nothing was saved yet. Consistent
        read: a save that returned True is seen."""
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
