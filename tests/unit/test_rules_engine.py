"""Judging events against rules, without servers: conditions, narrowing, loop guard, ids."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest

from contracts import Customer, OrderCreated, OrderSnapshot, OrderStatusChanged
from worker.rules.engine import (
    PlannedNotification,
    PlannedStatusChange,
    PlannedTask,
    UnplannableAction,
    judge,
    judge_rule,
    stay_id,
)
from worker.rules.facts import (
    Stay,
    TriggerEvent,
    from_order_created,
    from_status_changed,
    from_stay,
)
from worker.rules.loading import parse_rules
from worker.rules.templates import TemplateInvalid, compile_template

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)

RULES = parse_rules(
    """
rules:
  - name: big
    trigger: order.created
    condition: amount > 10000 && customer_type == "enterprise"
    actions:
      - set_status: {to: pending_review, reason: "amount ${amount}"}
      - notify: {channel: sales.managers, message: "${order_number}: ${amount} ${currency}"}
      - create_task: {title: 审核大额订单, assignee: "${customer_type}-desk", due_in: 2h}
  - name: reopened
    trigger: {event: order.status.changed, from: completed, to: [in_progress, pending]}
    actions: [{notify: {channel: ops, message: "reopened by ${actor}"}}]
  - name: ratio
    trigger: order.created
    condition: 1 / (amount_e4 - 5000000) > 0
    actions: [{set_status: cancelled}]
"""
)


def created(amount: str, customer_type: str = "enterprise") -> TriggerEvent:
    return from_order_created(
        OrderCreated(
            event_id=uuid4(),
            command_id=uuid4(),
            correlation_id="corr-1",
            order_number="SO-1",
            status="pending",
            version=1,
            customer=Customer(id="C-1", name="Acme", type=customer_type),
            amount=Decimal(amount),
            currency="CNY",
            order_date=date(2026, 11, 20),
            actor="erp",
            created_at=NOW,
        )
    )


def changed(from_status: str, to_status: str, depth: int = 0) -> TriggerEvent:
    return from_status_changed(
        OrderStatusChanged(
            event_id=uuid4(),
            command_id=uuid4(),
            order_number="SO-1",
            from_status=from_status,
            to_status=to_status,
            version=4,
            actor="bob",
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


def test_a_large_enterprise_order_fires_with_every_action_planned() -> None:
    event = created("20000.50")
    big, ratio = judge(RULES, event, max_depth=5, now=NOW)

    assert (big.outcome, big.why) == (
        "fired",
        'condition is true: amount > 10000 && customer_type == "enterprise"',
    )
    set_status, notify, task = big.actions
    assert isinstance(set_status, PlannedStatusChange)
    command = set_status.command
    assert (command.to_status, command.actor, command.reason) == (
        "pending_review",
        "rule:big",
        "amount 20000.50",
    )
    assert (command.expected_version, command.rule_depth) == (1, 1)
    assert isinstance(notify, PlannedNotification)
    assert notify.notification.message == "SO-1: 20000.50 CNY"
    assert notify.notification.causation_id == event.event_id
    assert isinstance(task, PlannedTask)
    assert (task.task.title, task.task.assignee) == ("审核大额订单", "enterprise-desk")
    assert task.task.due_at == datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    assert ratio.outcome == "not_matched"  # integer division: 1 / 195005000 is 0


def test_ids_are_derived_from_rule_event_and_position() -> None:
    event = created("20000")
    first = judge(RULES, event, 5, NOW)[0].actions
    again = judge(RULES, event, 5, datetime(2027, 1, 1, tzinfo=UTC))[0].actions
    assert [_id(a) for a in first] == [_id(a) for a in again]
    assert len({_id(a) for a in first}) == 3
    other = judge(RULES, created("20000"), 5, NOW)[0].actions
    assert not {_id(a) for a in first} & {_id(a) for a in other}


def _id(action: object) -> object:
    match action:
        case PlannedStatusChange(command=command):
            return command.command_id
        case PlannedNotification(notification=note):
            return note.notification_id
        case PlannedTask(task=task):
            return task.task_id
    raise AssertionError(action)


@pytest.mark.parametrize(("amount", "customer_type"), [("500", "enterprise"), ("20000", "smb")])
def test_a_false_condition_does_not_match(amount: str, customer_type: str) -> None:
    [big, _] = judge(RULES, created(amount, customer_type), 5, NOW)
    assert big.outcome == "not_matched"
    assert big.actions == ()


def test_a_condition_that_fails_on_the_data_is_a_failure_with_its_reason() -> None:
    [_, ratio] = judge(RULES, created("500"), 5, NOW)
    assert (ratio.outcome, ratio.reason) == ("failed", "condition_error")
    assert "division by zero" in ratio.why


@pytest.mark.parametrize(
    ("from_status", "to_status", "outcome"),
    [
        ("completed", "in_progress", "fired"),
        ("completed", "pending", "fired"),
        ("processed", "in_progress", "not_matched"),
        ("completed", "cancelled", "not_matched"),
    ],
)
def test_status_changes_are_narrowed_by_from_and_to(
    from_status: str, to_status: str, outcome: str
) -> None:
    [reopened] = judge(RULES, changed(from_status, to_status), 5, NOW)
    assert reopened.outcome == outcome


def test_the_loop_guard_stops_at_the_depth_limit() -> None:
    [below] = judge(RULES, changed("completed", "in_progress", depth=4), 5, NOW)
    [at] = judge(RULES, changed("completed", "in_progress", depth=5), 5, NOW)
    assert below.outcome == "fired"
    assert (at.outcome, at.reason, at.actions) == ("stopped", "depth_limit", ())
    assert "5 rule-caused steps deep" in at.why


def test_amounts_compare_exactly_enough_and_exactly_in_ten_thousandths() -> None:
    just_over = created("10000.0001").facts
    assert just_over["amount"] > 10000
    assert just_over["amount_e4"] == 100_000_001
    assert created("10000.00").facts["amount"] == 10000.0
    largest = created("99999999999999.9999").facts
    assert largest["amount_e4"] == 999_999_999_999_999_999


def test_an_action_that_cannot_be_built_is_planned_as_a_failure() -> None:
    rules = parse_rules(
        """
rules:
  - name: empty-assignee
    trigger: order.status.changed
    actions:
      - create_task: {title: t, assignee: "${reason}"}
      - notify: {channel: ops, message: still sent}
"""
    )
    [verdict] = judge(rules, changed("pending", "in_progress"), 5, NOW)
    failed, notify = verdict.actions
    assert isinstance(failed, UnplannableAction)
    assert (failed.kind, failed.position) == ("create_task", 1)
    assert isinstance(notify, PlannedNotification)


def test_templates_substitute_names_only() -> None:
    template = compile_template("${order_number} costs $$${amount}; $actor")
    assert template.render({"order_number": "SO-1", "amount": "5.00", "actor": "a"}) == (
        "SO-1 costs $5.00; a"
    )
    for source in ("${order_number.__class__}", "${0}", "$"):
        with pytest.raises(TemplateInvalid):
            compile_template(source)


def stay(depth: int, hours: float = 2.0) -> Stay:
    return Stay(
        order_number="SO-1",
        status="pending",
        version=6,
        from_status="in_progress",
        actor="rule:back",
        reason=None,
        amount=Decimal("500"),
        currency="CNY",
        customer_id="C-1",
        customer_type="standard",
        order_date=date(2026, 11, 20),
        entered_at=NOW - timedelta(hours=hours),
        correlation_id="corr-1",
        depth=depth,
    )


STAY_RULES = parse_rules(
    """
rules:
  - name: move-on
    trigger: {stayed_in: pending, for: 1h}
    actions: [{set_status: in_progress}]
"""
)


def test_a_stay_carries_on_the_depth_of_the_change_that_began_it() -> None:
    [rule] = STAY_RULES.time_rules()
    event = from_stay(stay(depth=2), stay_id("SO-1", 6), NOW)
    assert (event.depth, event.facts["depth"], event.facts["stayed_hours"]) == (2, 2, 2.0)

    verdict = judge_rule(rule, event, 5, NOW)
    [planned] = verdict.actions
    assert isinstance(planned, PlannedStatusChange)
    assert planned.command.rule_depth == 3


def test_the_loop_guard_stops_a_stay_rule_at_the_depth_limit() -> None:
    [rule] = STAY_RULES.time_rules()
    verdict = judge_rule(rule, from_stay(stay(depth=5), stay_id("SO-1", 6), NOW), 5, NOW)
    assert (verdict.outcome, verdict.reason, verdict.actions) == ("stopped", "depth_limit", ())


def test_a_due_date_past_the_calendar_is_a_failed_action_not_a_crash() -> None:
    rules = parse_rules(
        """
rules:
  - name: far
    trigger: order.created
    actions: [{create_task: {title: t, assignee: a, due_in: 520w}}]
"""
    )
    [verdict] = judge(rules, created("500"), 5, datetime(9995, 1, 1, tzinfo=UTC))
    [failed] = verdict.actions
    assert isinstance(failed, UnplannableAction)
    assert failed.detail.startswith("OverflowError")
