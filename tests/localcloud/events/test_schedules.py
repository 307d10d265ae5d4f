"""Scheduled rules in the local cloud (an endpoint whose state events never come is still reconciled):
the template's reconcile schedule reaches the
endpoint-state function, and each tick is the "Scheduled Event" AWS sends."""

from __future__ import annotations

import threading
from typing import Any

from localcloud.environment.containerenv import REPO_ROOT
from localcloud.events.routing import EventRouter
from localcloud.stack.resources import ScheduleSubscription, function_wiring
from localcloud.stack.template import TemplateResolver, load_template


def test_the_reconcile_schedule_is_wired_to_the_endpoint_state_function() -> None:
    path = REPO_ROOT / "template.yaml"
    resolver = TemplateResolver(load_template(path), stack_name="local")
    wiring = function_wiring(resolver, path, "us-east-1", {})
    assert [(s.function, s.expression) for s in wiring.schedules] == [
        ("local-endpointstatefunction", "rate(1 minute)")
    ]
    assert wiring.schedules[0].rule_arn.startswith("arn:aws:events:us-east-1:123456789012:rule/")


class CountingRunner:
    """Records each invocation; the second one stops the router (no sleeping: the tick itself signals)."""

    def __init__(self, stopping: threading.Event) -> None:
        self.stopping = stopping
        self.invocations: list[tuple[str, dict[str, Any]]] = []

    def invoke_async(self, function: str, event: dict[str, Any]) -> None:
        self.invocations.append((function, event))
        if len(self.invocations) == 2:
            self.stopping.set()


def test_each_tick_sends_the_scheduled_event_aws_sends() -> None:
    stopping = threading.Event()
    runner = CountingRunner(stopping)
    router = EventRouter("us-east-1", lambda service: None, lambda: runner, stopping)  # type: ignore[arg-type,return-value]
    rule = "arn:aws:events:us-east-1:123456789012:rule/local-reconcile"
    router.schedule_subscriptions = [ScheduleSubscription("fn", rule, "rate(1 minute)")]
    router.run_schedules(period_s=0.01)  # returns once the runner has stopped it
    assert [function for function, _ in runner.invocations] == ["fn", "fn"]
    event = runner.invocations[0][1]
    assert {k: event[k] for k in ("detail-type", "source", "resources", "detail", "account", "region")} == {
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "resources": [rule],
        "detail": {},
        "account": "123456789012",
        "region": "us-east-1",
    }
    assert runner.invocations[0][1]["id"] != runner.invocations[1][1]["id"]
