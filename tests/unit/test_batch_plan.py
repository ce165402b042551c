"""Deciding a whole batch in memory: each command sees the effect of those before it."""

from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

from contracts import (
    CommandOutcome,
    OrderCreated,
    OrderSnapshot,
    OrderStatusChanged,
    OrderStatusChangeRejected,
    RejectionReason,
)
from tests.support.commands import change_status, create_order, order_number
from tests.support.workflow_spec import spec_workflow
from worker.domain.batch import KnownOrder, RecordedCommand, plan_batch
from worker.domain.fingerprints import fingerprint
from worker.domain.incoming import IncomingCommand

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
WORKFLOW = spec_workflow()


def known(status: str, version: int = 1) -> KnownOrder:
    snapshot = OrderSnapshot(
        amount=Decimal("20000.00"),
        currency="CNY",
        customer_id="C-9",
        customer_type="vip",
        order_date=datetime(2026, 11, 1).date(),
    )
    return KnownOrder(status, version, snapshot, creation_fingerprint="f")


def test_several_moves_of_one_order_each_start_where_the_previous_ended() -> None:
    number = order_number()
    batch = [
        IncomingCommand(change_status(number, "in_progress")),
        IncomingCommand(change_status(number, "processed")),
        IncomingCommand(change_status(number, "completed")),
    ]

    plan = plan_batch(batch, {number: known("pending", 4)}, {}, WORKFLOW, NOW)

    assert [r.outcome for r in plan.results] == [CommandOutcome.APPLIED] * 3
    assert [(h.from_status, h.to_status, h.version) for h in plan.history] == [
        ("pending", "in_progress", 5),
        ("in_progress", "processed", 6),
        ("processed", "completed", 7),
    ]
    assert plan.moves == {number: ("completed", 7)}
    changed = [event for event, _ in plan.events]
    assert all(isinstance(event, OrderStatusChanged) for event in changed)
    assert [event.version for event in changed] == [5, 6, 7]  # type: ignore[union-attr]
    assert changed[0].order.customer_type == "vip"  # type: ignore[union-attr]


def test_a_move_refused_mid_batch_leaves_the_order_where_it_was_for_the_next() -> None:
    number = order_number()
    batch = [
        IncomingCommand(change_status(number, "completed")),  # pending -> completed: refused
        IncomingCommand(change_status(number, "in_progress")),
    ]

    plan = plan_batch(batch, {number: known("pending")}, {}, WORKFLOW, NOW)

    refused, moved = plan.results
    assert (refused.outcome, refused.reason) == (
        CommandOutcome.REJECTED,
        RejectionReason.INVALID_TRANSITION,
    )
    assert moved.outcome == CommandOutcome.APPLIED
    assert [(h.from_status, h.version) for h in plan.history] == [("pending", 2)]
    assert [type(event) for event, _ in plan.events] == [
        OrderStatusChangeRejected,
        OrderStatusChanged,
    ]


def test_an_order_registered_earlier_in_the_batch_can_be_moved_by_a_later_command() -> None:
    number = order_number()
    create = create_order(number)
    batch = [IncomingCommand(create), IncomingCommand(change_status(number, "in_progress"))]

    plan = plan_batch(batch, {}, {}, WORKFLOW, NOW)

    assert [r.outcome for r in plan.results] == [CommandOutcome.APPLIED] * 2
    assert [r.command.order_number for r in plan.registrations] == [number]
    assert [(h.from_status, h.to_status, h.version) for h in plan.history] == [
        (None, "pending", 1),
        ("pending", "in_progress", 2),
    ]
    created, changed = (event for event, _ in plan.events)
    assert isinstance(created, OrderCreated)
    assert isinstance(changed, OrderStatusChanged)
    assert changed.order.amount == create.amount


def test_a_repeat_within_the_batch_is_a_redelivery_that_changes_nothing() -> None:
    number = order_number()
    move = change_status(number, "in_progress")
    batch = [IncomingCommand(move), IncomingCommand(move)]

    plan = plan_batch(batch, {number: known("pending")}, {}, WORKFLOW, NOW)

    first, repeat = plan.results
    assert (first.outcome, first.redelivered) == (CommandOutcome.APPLIED, False)
    assert (repeat.outcome, repeat.redelivered, repeat.content_conflict) == (
        CommandOutcome.APPLIED,
        True,
        False,
    )
    assert len(plan.claims) == 1
    assert plan.deliveries == {move.command_id: 2}
    assert plan.redeliveries == {}
    assert len(plan.history) == 1
    assert len(plan.events) == 1


def test_a_command_the_inbox_already_holds_is_answered_from_the_inbox() -> None:
    number = order_number()
    move = change_status(number, "in_progress")
    recorded = {
        move.command_id: RecordedCommand(
            CommandOutcome.APPLIED, None, None, fingerprint=fingerprint(move)
        )
    }

    plan = plan_batch([IncomingCommand(move)], {number: known("in_progress", 2)}, recorded,
                      WORKFLOW, NOW)  # fmt: skip

    [result] = plan.results
    assert (result.outcome, result.redelivered) == (CommandOutcome.APPLIED, True)
    assert plan.redeliveries == {move.command_id: 1}
    assert plan.claims == []
    assert plan.history == []
    assert plan.events == []
    assert plan.moves == {}


def test_a_reused_id_with_other_content_is_flagged_as_a_content_conflict() -> None:
    number = order_number()
    original = change_status(number, "in_progress")
    reused = change_status(number, "cancelled", command_id=original.command_id)

    plan = plan_batch(
        [IncomingCommand(original), IncomingCommand(reused)],
        {number: known("pending")},
        {},
        WORKFLOW,
        NOW,
    )

    assert [r.content_conflict for r in plan.results] == [False, True]
    assert plan.moves == {number: ("in_progress", 2)}
    assert plan.deliveries == {original.command_id: 1}  # the other command is no delivery


def test_a_reused_id_is_no_further_delivery_of_the_command_the_inbox_holds() -> None:
    number = order_number()
    original = change_status(number, "in_progress")
    reused = change_status(number, "cancelled", command_id=original.command_id)
    recorded = {
        original.command_id: RecordedCommand(
            CommandOutcome.APPLIED, None, None, fingerprint=fingerprint(original)
        )
    }

    plan = plan_batch([IncomingCommand(reused)], {number: known("in_progress", 2)}, recorded,
                      WORKFLOW, NOW)  # fmt: skip

    [result] = plan.results
    assert result.content_conflict
    assert plan.redeliveries == {}
    assert plan.deliveries == {}
    assert plan.claims == []


def test_registering_twice_in_one_batch_is_a_duplicate_the_second_time() -> None:
    number = order_number()
    first = create_order(number)
    again = create_order(number, command_id=uuid4(), actor="someone-else")

    plan = plan_batch([IncomingCommand(first), IncomingCommand(again)], {}, {}, WORKFLOW, NOW)

    assert [r.outcome for r in plan.results] == [CommandOutcome.APPLIED, CommandOutcome.DUPLICATE]
    assert len(plan.registrations) == 1
    assert len(plan.claims) == 2


def test_a_move_for_an_order_nobody_registered_is_rejected_as_unknown_order() -> None:
    plan = plan_batch(
        [IncomingCommand(change_status(order_number(), "in_progress"))], {}, {}, WORKFLOW, NOW
    )

    [result] = plan.results
    assert result.reason == RejectionReason.UNKNOWN_ORDER
    assert plan.moves == {}


def test_only_a_rule_sent_command_carries_its_rule_depth_into_history_and_event() -> None:
    number = order_number()
    batch = [
        # An upstream system cannot switch the loop guard off by claiming a depth.
        IncomingCommand(change_status(number, "in_progress", actor="erp-sync", rule_depth=1000)),
        IncomingCommand(change_status(number, "pending", actor="rule:pong", rule_depth=3)),
        IncomingCommand(create_order(registered := order_number())),
    ]

    plan = plan_batch(batch, {number: known("pending")}, {}, WORKFLOW, NOW)

    assert [(h.actor, h.rule_depth) for h in plan.history] == [
        ("erp-sync", 0),
        ("rule:pong", 3),
        ("erp-sync", 0),
    ]
    changed = [event for event, _ in plan.events if isinstance(event, OrderStatusChanged)]
    assert [event.rule_depth for event in changed] == [0, 3]
    assert plan.history[2].incoming.command.order_number == registered
