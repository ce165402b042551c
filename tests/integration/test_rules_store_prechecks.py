"""The rules store plans against the order as it is in PostgreSQL, and writes what it planned."""

from datetime import UTC, datetime
from typing import Any

import psycopg

from tests.support.commands import change_status, create_order, order_number
from tests.support.rule_events import created_event as rule_event
from tests.support.rule_events import record as record_with
from worker.db.apply import apply_commands
from worker.db.rules_store import record_verdicts
from worker.db.workflow_store import load_workflow
from worker.domain.incoming import IncomingCommand
from worker.rules.engine import action_id, judge
from worker.rules.facts import TriggerEvent
from worker.rules.loading import parse_rules

Conn = psycopg.Connection[tuple[Any, ...]]

RULES = parse_rules(
    """
rules:
  - name: review
    trigger: order.created
    actions: [{set_status: pending_review}]
  - name: stay
    trigger: order.created
    actions: [{set_status: pending}]
"""
)

ACTIONS = """
SELECT a.rule_name, a.outcome, a.reason, a.detail
FROM rule_actions a WHERE a.event_id = %s ORDER BY a.rule_name
"""
SENT = "SELECT event_id, exchange, message_type FROM outbox WHERE command_id = %s"


def registered(conn: Conn) -> TriggerEvent:
    number = order_number()
    apply_commands(conn, load_workflow(conn), [IncomingCommand(create_order(number))])
    return created_event(number)


def created_event(number: str) -> TriggerEvent:
    return rule_event(number, amount="1200.50", customer_id="C-1")


def record(conn: Conn, event: TriggerEvent) -> int:
    return record_with(conn, RULES, event)


def test_a_move_is_sent_and_a_move_to_the_current_status_is_skipped(
    worker_conn: Conn, db: Conn
) -> None:
    event = registered(worker_conn)
    assert record(worker_conn, event) == 2

    assert db.execute(ACTIONS, (event.event_id,)).fetchall() == [
        ("review", "queued", None, None),
        ("stay", "skipped", None, "the order is already pending"),
    ]
    command_id = action_id("review", event.event_id, 1)
    assert db.execute(SENT, (event.event_id,)).fetchall() == [
        (command_id, "commands", "ChangeOrderStatus")
    ]


def test_a_move_planned_on_an_order_that_has_moved_on_is_failed_and_not_sent(
    worker_conn: Conn, db: Conn
) -> None:
    event = registered(worker_conn)
    apply_commands(
        worker_conn,
        load_workflow(worker_conn),
        [IncomingCommand(change_status(event.order_number, "in_progress"))],
    )
    assert record(worker_conn, event) == 2

    conflict = "expected version 1 but the order is at 2"
    assert db.execute(ACTIONS, (event.event_id,)).fetchall() == [
        ("review", "failed", "version_conflict", conflict),
        ("stay", "failed", "version_conflict", conflict),
    ]
    assert db.execute(SENT, (event.event_id,)).fetchall() == []


def test_effects_the_database_refuses_are_recorded_with_the_error(
    worker_conn: Conn, db: Conn
) -> None:
    rules = parse_rules(
        """
rules:
  - name: task
    trigger: order.created
    actions: [{create_task: {title: call, assignee: ops}}]
"""
    )
    event = created_event("SO-NOWHERE")  # no such order: the task's foreign key fails
    now = datetime.now(UTC)
    verdicts = judge(rules, event, 5, now)
    assert record_verdicts(worker_conn, event, verdicts, load_workflow(worker_conn), now) == 1

    [(outcome, reason, detail)] = db.execute(
        "SELECT outcome, reason, detail FROM rule_firings WHERE event_id = %s", (event.event_id,)
    ).fetchall()
    assert (outcome, reason) == ("failed", "action_error")
    assert detail.startswith("ForeignKeyViolation: ")
    assert "tasks" in detail
    assert db.execute(ACTIONS, (event.event_id,)).fetchall() == []
