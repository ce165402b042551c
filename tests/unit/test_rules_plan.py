"""Planning the rules transaction in memory: which rows each verdict writes, and why."""

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from contracts import Customer, OrderCreated, OrderSnapshot, OrderStatusChanged
from tests.support.workflow_spec import spec_workflow
from worker.domain.decisions import OrderState
from worker.rules.engine import action_id, judge
from worker.rules.facts import TriggerEvent, from_order_created, from_status_changed
from worker.rules.loading import parse_rules
from worker.rules.plan import (
    ActionRow,
    FiringPlan,
    PlannedFiring,
    orders_to_read,
    plan_firings,
)

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
WORKFLOW = spec_workflow()
EVENT_ID = UUID("0b6f2a4e-1c3d-4e5f-8a9b-0c1d2e3f4a5b")

RULES = parse_rules(
    """
rules:
  - name: big
    trigger: order.created
    condition: amount > 10000
    actions:
      - set_status: {to: pending_review, reason: "amount ${amount}"}
      - notify: {channel: sales.managers, message: "${order_number}: ${amount} ${currency}"}
      - create_task: {title: "call ${customer_id}", assignee: "${customer_type}-desk", due_in: 2h}
  - name: quiet
    trigger: order.created
    condition: amount > 1000000
    actions: [{notify: {channel: ops, message: huge}}]
"""
)

CHAIN = parse_rules(
    """
rules:
  - name: onward
    trigger: order.status.changed
    actions: [{set_status: in_progress}]
"""
)


def created(amount: str = "20000.50", number: str = "SO-1") -> TriggerEvent:
    return from_order_created(
        OrderCreated(
            event_id=EVENT_ID,
            command_id=uuid4(),
            correlation_id="corr-1",
            order_number=number,
            status="pending",
            version=1,
            customer=Customer(id="C-7", name="Acme", type="enterprise"),
            amount=Decimal(amount),
            currency="CNY",
            order_date=date(2026, 11, 20),
            actor="erp",
            created_at=NOW,
        )
    )


def changed(depth: int) -> TriggerEvent:
    return from_status_changed(
        OrderStatusChanged(
            event_id=EVENT_ID,
            command_id=uuid4(),
            order_number="SO-1",
            from_status="pending_review",
            to_status="pending",
            version=3,
            actor="rule:back",
            changed_at=NOW,
            order=OrderSnapshot(
                amount=Decimal("1"),
                currency="CNY",
                customer_id="C-1",
                customer_type="vip",
                order_date=date(2026, 11, 20),
            ),
            rule_depth=depth,
        )
    )


def plan_big(orders: dict[str, OrderState], event: TriggerEvent | None = None) -> PlannedFiring:
    event = event or created()
    plan = plan_firings(event, judge(RULES, event, 5, NOW), WORKFLOW, orders, NOW)
    [firing] = plan.firings
    return firing


def set_status_row(firing: PlannedFiring) -> ActionRow:
    return firing.actions[0]


def test_a_rule_that_fires_writes_each_action_its_row_and_its_message() -> None:
    event = created()
    firing = plan_big({"SO-1": OrderState("pending", 1)}, event)

    row = firing.firing
    assert (row.event_id, row.rule_name, row.outcome, row.reason) == (
        EVENT_ID,
        "big",
        "fired",
        None,
    )
    assert row.detail == "condition is true: amount > 10000"
    assert (row.order_number, row.order_version, row.trigger, row.depth) == (
        "SO-1",
        1,
        "order.created",
        0,
    )
    assert (row.correlation_id, row.fired_at) == ("corr-1", NOW)
    assert row.facts["order_date"] == "2026-11-20T00:00:00+00:00"  # JSON-ready

    command_id, notification_id, task_id = (action_id("big", EVENT_ID, n) for n in (1, 2, 3))
    task_event_id = action_id("big", EVENT_ID, 3, "TaskCreated")
    assert firing.actions == (
        ActionRow(1, "set_status", "pending_review", command_id),
        ActionRow(2, "notify", "sales.managers", notification_id, detail="SO-1: 20000.50 CNY"),
        ActionRow(3, "create_task", "call C-7", task_id, detail="for enterprise-desk"),
    )
    [task] = firing.tasks
    assert (task.task_id, task.order_number, task.rule_name, task.event_id) == (
        task_id,
        "SO-1",
        "big",
        EVENT_ID,
    )
    assert (task.title, task.assignee) == ("call C-7", "enterprise-desk")
    assert task.due_at == datetime(2026, 11, 27, 10, 0, tzinfo=UTC)

    sent = [(m.message_id, m.exchange, m.routing_key, m.message_type) for m in firing.outbox]
    assert sent == [
        (command_id, "commands", "order.status.change", "ChangeOrderStatus"),
        (notification_id, "notifications", "sales.managers", "Notification"),
        (task_event_id, None, "task.created", "TaskCreated"),
    ]
    assert {(m.order_number, m.causation_id, m.correlation_id) for m in firing.outbox} == {
        ("SO-1", EVENT_ID, "corr-1")
    }
    command = firing.outbox[0].payload
    assert (command["to_status"], command["expected_version"], command["actor"]) == (
        "pending_review",
        1,
        "rule:big",
    )
    assert (command["rule_depth"], command["reason"]) == (1, "amount 20000.50")


def test_a_rule_that_does_not_match_writes_nothing_and_reads_nothing() -> None:
    event = created(amount="500")
    verdicts = judge(RULES, event, 5, NOW)
    assert [v.outcome for v in verdicts] == ["not_matched", "not_matched"]

    assert orders_to_read(verdicts) == []
    assert plan_firings(event, verdicts, WORKFLOW, {}, NOW) == FiringPlan(())


def test_only_the_orders_a_recorded_set_status_moves_are_read() -> None:
    event = created()
    assert orders_to_read(judge(RULES, event, 5, NOW)) == ["SO-1"]
    assert orders_to_read(judge(RULES, event, 0, NOW)) == []  # stopped: nothing is sent


def test_a_rule_stopped_at_the_depth_limit_is_recorded_without_effects() -> None:
    event = changed(depth=5)
    plan = plan_firings(event, judge(CHAIN, event, 5, NOW), WORKFLOW, {}, NOW)

    [firing] = plan.firings
    assert (firing.firing.outcome, firing.firing.reason, firing.firing.depth) == (
        "stopped",
        "depth_limit",
        5,
    )
    assert "rules stop at 5 (ORDERS_RULES_MAX_DEPTH)" in firing.firing.detail
    assert (firing.actions, firing.tasks, firing.outbox) == ((), (), ())


def test_a_condition_that_fails_is_recorded_with_its_reason() -> None:
    rules = parse_rules(
        """
rules:
  - name: ratio
    trigger: order.created
    condition: 1 / (amount_e4 - 5000000) > 0
    actions: [{set_status: cancelled}]
"""
    )
    event = created(amount="500")
    [firing] = plan_firings(event, judge(rules, event, 5, NOW), WORKFLOW, {}, NOW).firings

    assert (firing.firing.outcome, firing.firing.reason) == ("failed", "condition_error")
    assert firing.firing.detail.startswith("condition failed: ")
    assert firing.actions == ()


def test_a_move_to_the_status_the_order_has_is_skipped_and_not_sent() -> None:
    firing = plan_big({"SO-1": OrderState("pending_review", 1)})

    assert set_status_row(firing) == ActionRow(
        1,
        "set_status",
        "pending_review",
        action_id("big", EVENT_ID, 1),
        "skipped",
        detail="the order is already pending_review",
    )
    assert [m.message_type for m in firing.outbox] == ["Notification", "TaskCreated"]
    assert firing.firing.outcome == "fired"


@pytest.mark.parametrize(
    ("orders", "reason", "detail"),
    [
        (
            {"SO-1": OrderState("cancelled", 1)},
            "invalid_transition",
            "cancelled -> pending_review is not allowed (allowed: pending)",
        ),
        (
            {"SO-1": OrderState("pending", 2)},
            "version_conflict",
            "expected version 1 but the order is at 2",
        ),
        ({}, "unknown_order", "no order with number 'SO-1'"),
        ({"SO-2": OrderState("pending", 1)}, "unknown_order", "no order with number 'SO-1'"),
    ],
)
def test_a_move_the_status_worker_would_reject_fails_with_its_reason_and_is_not_sent(
    orders: dict[str, OrderState], reason: str, detail: str
) -> None:
    firing = plan_big(orders)

    assert set_status_row(firing) == ActionRow(
        1,
        "set_status",
        "pending_review",
        action_id("big", EVENT_ID, 1),
        "failed",
        reason,
        detail,
    )
    assert "ChangeOrderStatus" not in [m.message_type for m in firing.outbox]
    assert len(firing.tasks) == 1  # the rule's other actions still happen
    assert firing.firing.outcome == "fired"


def test_placeholders_are_filled_in_every_row_that_shows_them() -> None:
    firing = plan_big({"SO-万": OrderState("pending", 1)}, created("123456.7800", "SO-万"))

    notify, task_created = firing.outbox[1].payload, firing.outbox[2].payload
    assert notify["message"] == "SO-万: 123456.7800 CNY"
    assert firing.actions[1].detail == "SO-万: 123456.7800 CNY"
    assert (task_created["title"], task_created["assignee"]) == ("call C-7", "enterprise-desk")
    assert (firing.tasks[0].title, firing.actions[2].target) == ("call C-7", "call C-7")
    assert firing.outbox[0].payload["reason"] == "amount 123456.7800"


def test_an_action_that_cannot_be_built_is_a_failed_row_and_sends_nothing() -> None:
    rules = parse_rules(
        """
rules:
  - name: empty-assignee
    trigger: order.created
    actions:
      - create_task: {title: t, assignee: "${reason}"}
      - notify: {channel: ops, message: still sent}
"""
    )
    event = created()
    [firing] = plan_firings(event, judge(rules, event, 5, NOW), WORKFLOW, {}, NOW).firings

    failed, notify = firing.actions
    assert (failed.action, failed.target, failed.outcome, failed.reason) == (
        "create_task",
        "-",
        "failed",
        "invalid_action",
    )
    assert failed.message_id == action_id("empty-assignee", EVENT_ID, 1)
    assert "assignee" in (failed.detail or "")
    assert firing.tasks == ()
    assert [m.message_type for m in firing.outbox] == ["Notification"]
    assert notify.outcome == "queued"


def test_two_plans_of_the_same_input_are_the_same_rows_with_the_same_ids() -> None:
    orders = {"SO-1": OrderState("pending", 1)}
    first, second = (plan_big(orders, created()) for _ in range(2))

    assert first == second
    ids = {a.message_id for a in first.actions} | {m.message_id for m in first.outbox}
    assert ids == {action_id("big", EVENT_ID, n) for n in (1, 2, 3)} | {
        action_id("big", EVENT_ID, 3, "TaskCreated")
    }
    another_event = plan_big(orders, replace(created(), event_id=uuid4()))
    assert not ids & {a.message_id for a in another_event.actions}


def test_a_firing_the_database_refused_is_recorded_as_failed_with_the_error() -> None:
    firing = plan_big({"SO-1": OrderState("pending", 1)})

    refused = firing.refused("ForeignKeyViolation: no such order")
    assert (refused.outcome, refused.reason, refused.detail) == (
        "failed",
        "action_error",
        "ForeignKeyViolation: no such order",
    )
    assert (refused.event_id, refused.rule_name, refused.fired_at) == (EVENT_ID, "big", NOW)
