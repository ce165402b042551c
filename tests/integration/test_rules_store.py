"""Recording what rules did, against PostgreSQL: claims, savepoints, the outbox, stays."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from tests.support.commands import create_order, order_number
from tests.support.rule_events import created_event as rule_event
from tests.support.rule_events import record as record_with
from worker.db.apply import apply_commands
from worker.db.rules_store import find_stays, record_verdicts
from worker.db.workflow_store import load_workflow
from worker.domain.incoming import IncomingCommand
from worker.rules.engine import judge_rule, stay_id
from worker.rules.facts import TriggerEvent, from_stay
from worker.rules.loading import parse_rules

Conn = psycopg.Connection[tuple[Any, ...]]

RULES = parse_rules(
    """
rules:
  - name: task
    trigger: order.created
    actions: [{create_task: {title: "call ${customer_id}", assignee: ops}}]
  - name: tell
    trigger: order.created
    actions: [{notify: {channel: ops.alerts, message: "new ${order_number}"}}]
  - name: stuck
    trigger: {stayed_in: pending, for: 1h}
    condition: amount > 10000
    actions: [{set_status: cancelled}]
"""
)


def created_event(number: str) -> TriggerEvent:
    return rule_event(number, amount="500", customer_id="C-9")


def record(conn: Conn, event: TriggerEvent) -> int:
    return record_with(conn, RULES, event)


def test_a_rule_the_database_refuses_is_failed_and_the_others_are_kept(
    worker_conn: Conn, db: Conn
) -> None:
    # No such order: the task's foreign key fails, inside that rule's savepoint.
    event = created_event("SO-NOWHERE")
    assert record(worker_conn, event) == 2

    firings = db.execute(
        "SELECT rule_name, outcome, reason FROM rule_firings WHERE event_id = %s ORDER BY 1",
        (event.event_id,),
    ).fetchall()
    assert firings == [("task", "failed", "action_error"), ("tell", "fired", None)]
    assert db.execute(
        "SELECT count(*) FROM tasks WHERE order_number = %s", (event.order_number,)
    ).fetchone() == (0,)
    assert db.execute(
        "SELECT exchange, routing_key, message_type FROM outbox WHERE command_id = %s",
        (event.event_id,),
    ).fetchall() == [("notifications", "ops.alerts", "Notification")]


def test_recording_the_same_event_again_writes_nothing(worker_conn: Conn, db: Conn) -> None:
    number = order_number()
    apply_commands(worker_conn, load_workflow(worker_conn), [IncomingCommand(create_order(number))])
    event = created_event(number)
    assert record(worker_conn, event) == 2
    counts = (
        "SELECT (SELECT count(*) FROM rule_firings WHERE event_id = %(event)s),"
        " (SELECT count(*) FROM rule_actions WHERE event_id = %(event)s),"
        " (SELECT count(*) FROM tasks WHERE order_number = %(order)s),"
        " (SELECT count(*) FROM outbox WHERE order_number = %(order)s)"
    )
    key = {"event": event.event_id, "order": number}
    before = db.execute(counts, key).fetchone()
    assert before == (2, 2, 1, 3)  # OrderCreated, the notification, TaskCreated

    assert record(worker_conn, event) == 0
    assert db.execute(counts, key).fetchone() == before


def register(conn: Conn, *numbers: str) -> None:
    apply_commands(
        conn,
        load_workflow(conn),
        [IncomingCommand(create_order(number, amount=Decimal("500"))) for number in numbers],
    )


def test_a_stay_whose_condition_is_false_is_found_again_until_the_rule_fires(
    worker_conn: Conn, db: Conn
) -> None:
    number = order_number()
    register(worker_conn, number)
    soon = datetime.now(UTC) + timedelta(seconds=1)
    assert find_stays(worker_conn, "stuck", "pending", soon - timedelta(hours=1), 10) == []
    [stay] = find_stays(worker_conn, "stuck", "pending", soon, 10)
    assert (stay.order_number, stay.version, stay.amount, stay.depth) == (
        number,
        1,
        Decimal("500"),
        0,
    )

    [rule] = RULES.time_rules()
    event = from_stay(stay, stay_id(number, 1), soon)
    verdict = judge_rule(rule, event, 5, soon)
    assert verdict.outcome == "not_matched"
    assert record_verdicts(worker_conn, event, [verdict], load_workflow(worker_conn), soon) == 0

    # The condition may hold later (stayed_hours > 48.0, say): not recorded, asked again.
    assert find_stays(worker_conn, "stuck", "pending", soon, 10) == [stay]
    firings = "SELECT outcome FROM rule_firings WHERE order_number = %s"
    assert db.execute(firings, (number,)).fetchall() == []

    fired = replace(verdict, outcome="fired", why="test")
    record_verdicts(worker_conn, event, [fired], load_workflow(worker_conn), soon)
    assert find_stays(worker_conn, "stuck", "pending", soon, 10) == []
    assert db.execute(firings, (number,)).fetchall() == [("fired",)]


def test_stays_are_found_a_page_at_a_time_oldest_first(worker_conn: Conn) -> None:
    numbers = [order_number() for _ in range(5)]
    for number in numbers:  # one transaction each: each stay begins a little later
        register(worker_conn, number)
    soon = datetime.now(UTC) + timedelta(seconds=1)
    pages: list[list[str]] = []
    after = None
    while True:
        page = find_stays(worker_conn, "stuck", "pending", soon, 2, after=after)
        pages.append([stay.order_number for stay in page])
        if len(page) < 2:
            break
        after = (page[-1].entered_at, page[-1].order_number)
    assert pages == [numbers[:2], numbers[2:4], numbers[4:]]
