"""The apply step against PostgreSQL: outcomes, history, outbox and the inbox."""

import threading
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
import pytest

from contracts import CommandOutcome, RejectionReason
from tests.support.commands import change_status, create_order, order_number
from tests.support.waiting import eventually
from worker.db.apply import apply_commands
from worker.db.errors import ConcurrentClaim, ConcurrentRegistration, translate
from worker.db.workflow_store import load_workflow
from worker.domain.fingerprints import creation_fingerprint
from worker.domain.incoming import IncomingCommand
from worker.domain.outcomes import ApplyResult
from worker.domain.workflow import Status, Workflow
from worker.errors import Unavailable

Conn = psycopg.Connection[tuple[Any, ...]]


def apply(conn: Conn, *commands: Any, correlation_id: str | None = None) -> list[ApplyResult]:
    batch = [IncomingCommand(command, correlation_id=correlation_id) for command in commands]
    return apply_commands(conn, load_workflow(conn), batch)


def history(db: Conn, number: str) -> list[tuple[Any, ...]]:
    return db.execute(
        """SELECT from_status, to_status, version, actor, reason, command_id
           FROM order_status_history WHERE order_number = %s ORDER BY version""",
        (number,),
    ).fetchall()


def outbox(db: Conn, number: str) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT message_type, routing_key, payload FROM outbox WHERE order_number = %s ORDER BY id",
        (number,),
    ).fetchall()
    return [{"type": t, "routing_key": rk, **payload} for t, rk, payload in rows]


def inbox(db: Conn, command_id: UUID) -> tuple[Any, ...] | None:
    return db.execute(
        "SELECT outcome, reason, detail, deliveries FROM processed_commands WHERE command_id = %s",
        (command_id,),
    ).fetchone()


def registered(conn: Conn) -> str:
    number = order_number()
    [result] = apply(conn, create_order(number))
    assert result.outcome == CommandOutcome.APPLIED
    return number


def test_registering_an_order_writes_it_with_history_and_an_event(
    worker_conn: Conn, db: Conn
) -> None:
    command = create_order(order_number(), amount=Decimal("20000.00"))
    [result] = apply(worker_conn, command, correlation_id="corr-1")
    assert result.outcome == CommandOutcome.APPLIED
    number = command.order_number
    order = db.execute(
        "SELECT status, version, amount, customer_name FROM orders WHERE order_number = %s",
        (number,),
    ).fetchone()
    assert order == ("pending", 1, Decimal("20000.00"), "Acme Trading")
    assert db.execute(
        "SELECT sku, quantity, unit_price FROM order_lines WHERE order_number = %s", (number,)
    ).fetchall() == [("SKU-1", 3, Decimal("400.1"))]
    assert history(db, number) == [(None, "pending", 1, "erp-sync", None, command.command_id)]
    [event] = outbox(db, number)
    assert event["type"] == "OrderCreated"
    assert event["routing_key"] == "order.created"
    assert event["amount"] == "20000.00"
    assert event["correlation_id"] == "corr-1"
    assert inbox(db, command.command_id) == ("applied", None, None, 1)


def test_a_registration_without_an_actor_is_recorded_as_system(worker_conn: Conn, db: Conn) -> None:
    command = create_order(order_number(), actor=None)
    apply(worker_conn, command)
    assert history(db, command.order_number)[0][3] == "system"


def test_a_status_change_moves_the_order_and_emits_a_snapshot(worker_conn: Conn, db: Conn) -> None:
    number = registered(worker_conn)
    command = change_status(number, "in_progress", reason="customer confirmed")
    [result] = apply(worker_conn, command)
    assert result.outcome == CommandOutcome.APPLIED
    assert db.execute(
        "SELECT status, version FROM orders WHERE order_number = %s", (number,)
    ).fetchone() == ("in_progress", 2)
    assert history(db, number)[-1] == (
        "pending",
        "in_progress",
        2,
        "alice",
        "customer confirmed",
        command.command_id,
    )
    event = outbox(db, number)[-1]
    assert event["type"] == "OrderStatusChanged"
    assert (event["from_status"], event["to_status"], event["version"]) == (
        "pending",
        "in_progress",
        2,
    )
    assert event["command_id"] == str(command.command_id)
    assert event["correlation_id"] == str(command.command_id)
    assert event["order"] == {
        "amount": "1200.50",
        "currency": "CNY",
        "customer_id": "C-1",
        "customer_type": "enterprise",
        "order_date": "2026-11-20",
    }


def test_a_redelivered_command_changes_nothing_and_is_counted(worker_conn: Conn, db: Conn) -> None:
    number = registered(worker_conn)
    command = change_status(number, "in_progress")
    [first] = apply(worker_conn, command)
    [again] = apply(worker_conn, command)
    assert (first.outcome, first.redelivered) == (CommandOutcome.APPLIED, False)
    assert (again.outcome, again.redelivered, again.content_conflict) == (
        CommandOutcome.APPLIED,
        True,
        False,
    )
    assert len(history(db, number)) == 2
    assert len(outbox(db, number)) == 2
    assert inbox(db, command.command_id) == ("applied", None, None, 2)


def test_the_same_command_twice_in_one_batch_applies_once(worker_conn: Conn, db: Conn) -> None:
    number = registered(worker_conn)
    command = change_status(number, "in_progress")
    first, second = apply(worker_conn, command, command)
    assert (first.redelivered, second.redelivered) == (False, True)
    assert [row[2] for row in history(db, number)] == [1, 2]
    assert len(outbox(db, number)) == 2


def test_a_command_id_reused_with_other_content_is_flagged_and_changes_nothing(
    worker_conn: Conn, db: Conn
) -> None:
    number = registered(worker_conn)
    original = change_status(number, "in_progress")
    apply(worker_conn, original)
    reused = change_status(number, "cancelled", command_id=original.command_id)
    seen = "SELECT deliveries, last_seen_at FROM processed_commands WHERE command_id = %s"
    before = db.execute(seen, (original.command_id,)).fetchone()
    [result] = apply(worker_conn, reused)
    assert result.content_conflict
    assert db.execute(
        "SELECT status FROM orders WHERE order_number = %s", (number,)
    ).fetchone() == ("in_progress",)
    assert db.execute(seen, (original.command_id,)).fetchone() == before  # not a delivery
    apply(worker_conn, original)  # a true repeat still counts
    assert db.execute(seen, (original.command_id,)).fetchone()[0] == 2  # type: ignore[index]


def test_moving_to_the_current_status_is_unchanged(worker_conn: Conn, db: Conn) -> None:
    number = registered(worker_conn)
    command = change_status(number, "pending")
    [result] = apply(worker_conn, command)
    assert result.outcome == CommandOutcome.UNCHANGED
    assert inbox(db, command.command_id) == ("unchanged", None, "the order is already pending", 1)
    assert len(history(db, number)) == 1
    assert len(outbox(db, number)) == 1


@pytest.mark.parametrize(
    ("to_status", "expectations", "reason"),
    [
        ("completed", {}, RejectionReason.INVALID_TRANSITION),
        ("in_progress", {"expected_status": "pending_review"}, RejectionReason.VERSION_CONFLICT),
        ("in_progress", {"expected_version": 5}, RejectionReason.VERSION_CONFLICT),
        ("archived", {}, RejectionReason.UNKNOWN_STATUS),
    ],
)
def test_rejections_are_recorded_and_emitted_and_change_nothing(
    worker_conn: Conn,
    db: Conn,
    to_status: str,
    expectations: dict[str, Any],
    reason: RejectionReason,
) -> None:
    number = registered(worker_conn)
    command = change_status(number, to_status, **expectations)
    [result] = apply(worker_conn, command)
    assert (result.outcome, result.reason) == (CommandOutcome.REJECTED, reason)
    outcome, recorded_reason, detail, _ = inbox(db, command.command_id) or ()
    assert (outcome, recorded_reason) == ("rejected", reason.value)
    assert detail == result.detail
    assert detail
    assert db.execute(
        "SELECT status, version FROM orders WHERE order_number = %s", (number,)
    ).fetchone() == ("pending", 1)
    assert len(history(db, number)) == 1
    event = outbox(db, number)[-1]
    assert event["type"] == "OrderStatusChangeRejected"
    assert event["routing_key"] == "order.status.rejected"
    assert (event["reason"], event["detail"], event["command_type"]) == (
        reason.value,
        detail,
        "ChangeOrderStatus",
    )


def test_a_change_for_an_unknown_order_is_rejected(worker_conn: Conn, db: Conn) -> None:
    command = change_status("SO-NOWHERE", "in_progress")
    [result] = apply(worker_conn, command)
    assert result.reason == RejectionReason.UNKNOWN_ORDER
    [event] = outbox(db, "SO-NOWHERE")
    assert event["reason"] == "unknown_order"


def test_registering_the_same_order_again_is_a_duplicate(worker_conn: Conn, db: Conn) -> None:
    first = create_order(order_number())
    again = first.model_copy(update={"command_id": create_order().command_id, "actor": "retry"})
    apply(worker_conn, first)
    [result] = apply(worker_conn, again)
    assert result.outcome == CommandOutcome.DUPLICATE
    assert inbox(db, again.command_id)[0:2] == ("duplicate", None)  # type: ignore[index]
    assert len(outbox(db, first.order_number)) == 1


def test_registering_a_different_order_under_a_taken_number_is_rejected(
    worker_conn: Conn, db: Conn
) -> None:
    first = create_order(order_number())
    other = create_order(first.order_number, amount=Decimal("99"))
    apply(worker_conn, first)
    [result] = apply(worker_conn, other)
    assert (result.outcome, result.reason) == (
        CommandOutcome.REJECTED,
        RejectionReason.DUPLICATE_ORDER,
    )
    assert db.execute(
        "SELECT amount FROM orders WHERE order_number = %s", (first.order_number,)
    ).fetchone() == (Decimal("1200.50"),)
    event = outbox(db, first.order_number)[-1]
    assert (event["reason"], event["command_type"]) == ("duplicate_order", "CreateOrder")


def test_a_batch_applies_commands_for_one_order_in_arrival_order(
    worker_conn: Conn, db: Conn
) -> None:
    number = order_number()
    results = apply(
        worker_conn,
        create_order(number),
        change_status(number, "in_progress"),
        change_status(number, "completed"),
        change_status(number, "cancelled"),  # refused: completed orders reopen, not cancel
        change_status(number, "in_progress", expected_version=3),
        change_status(number, "processed"),
    )
    assert [r.outcome.value for r in results] == [
        "applied",
        "applied",
        "applied",
        "rejected",
        "applied",
        "applied",
    ]
    assert [(row[0], row[1], row[2]) for row in history(db, number)] == [
        (None, "pending", 1),
        ("pending", "in_progress", 2),
        ("in_progress", "completed", 3),
        ("completed", "in_progress", 4),
        ("in_progress", "processed", 5),
    ]
    assert [e["type"] for e in outbox(db, number)] == [
        "OrderCreated",
        "OrderStatusChanged",
        "OrderStatusChanged",
        "OrderStatusChangeRejected",
        "OrderStatusChanged",
        "OrderStatusChanged",
    ]


def test_every_history_row_has_exactly_one_event(worker_conn: Conn, db: Conn) -> None:
    numbers = [order_number() for _ in range(5)]
    commands: list[Any] = [create_order(n) for n in numbers]
    for n in numbers:
        commands += [change_status(n, "in_progress"), change_status(n, "completed")]
    commands += commands[:4]  # redeliveries
    apply(worker_conn, *commands)
    unmatched = db.execute(
        """SELECT h.order_number, h.version FROM order_status_history h
           LEFT JOIN outbox o ON o.order_number = h.order_number
                AND o.message_type IN ('OrderCreated', 'OrderStatusChanged')
                AND (o.payload ->> 'version')::int = h.version
           GROUP BY h.order_number, h.version HAVING count(o.id) <> 1"""
    ).fetchall()
    assert unmatched == []
    counts = db.execute(
        """SELECT (SELECT count(*) FROM order_status_history),
                  (SELECT count(*) FROM outbox WHERE message_type <> 'OrderStatusChangeRejected')"""
    ).fetchone()
    assert counts == (15, 15)


def test_concurrent_changes_to_one_order_are_serialised(database_url: str, db: Conn) -> None:
    """Two workers racing on one order: the row lock makes one wait and see the other's change."""
    with psycopg.connect(database_url) as setup:
        number = registered(setup)
    results: list[ApplyResult] = []
    start = threading.Barrier(2)

    def race(to_status: str) -> None:
        with psycopg.connect(database_url) as conn:
            workflow = load_workflow(conn)
            start.wait()
            results.extend(
                apply_commands(conn, workflow, [IncomingCommand(change_status(number, to_status))])
            )

    threads = [threading.Thread(target=race, args=(s,)) for s in ("in_progress", "cancelled")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    outcomes = sorted(r.outcome.value for r in results)
    # Whichever came second saw the first one's status, not the stale 'pending'.
    assert outcomes in (["applied", "applied"], ["applied", "rejected"])
    versions = [row[2] for row in history(db, number)]
    assert versions == list(range(1, len(versions) + 1))
    assert len(versions) == 1 + outcomes.count("applied")


def test_a_batch_that_fails_leaves_nothing_behind(worker_conn: Conn, db: Conn) -> None:
    number = order_number()
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        apply_commands(
            worker_conn,
            _workflow_with_extra_status(worker_conn),
            [IncomingCommand(create_order(number)), IncomingCommand(change_status(number, "x"))],
        )
    assert db.execute(
        "SELECT count(*) FROM orders WHERE order_number = %s", (number,)
    ).fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM processed_commands").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM outbox").fetchone() == (0,)


def _workflow_with_extra_status(conn: Conn) -> Workflow:
    """A worker's cached workflow that knows a status the database does not (any more)."""
    stored = load_workflow(conn)
    return Workflow.build(
        [*stored.statuses, Status("x", "X", "某")],
        stored.initial,
        [*stored.transitions, ("pending", "x")],
    )


def test_a_command_id_claimed_meanwhile_by_another_transaction_is_retried_as_a_repeat(
    database_url: str, worker_conn: Conn
) -> None:
    """Another worker holds an uncommitted claim of the same id: this batch waits, then retries."""
    create = create_order(order_number())
    with psycopg.connect(database_url) as other:
        other.execute(
            "INSERT INTO processed_commands (command_id, command_type, order_number, outcome, "
            "fingerprint, processed_at, last_seen_at) "
            "VALUES (%s, 'CreateOrder', %s, 'unchanged', 'f', now(), now())",
            (create.command_id, create.order_number),
        )
        failure = _apply_until_other_commits(database_url, worker_conn, other, create)

    assert [type(error) for error in failure] == [ConcurrentClaim]
    assert isinstance(translate(failure[0]), Unavailable), "applied again, as an outage is"
    [again] = apply(worker_conn, create)
    assert (again.outcome, again.redelivered) == (CommandOutcome.UNCHANGED, True)


def test_an_order_registered_meanwhile_by_another_transaction_is_retried_as_a_duplicate(
    database_url: str, worker_conn: Conn
) -> None:
    command = create_order(order_number())
    with psycopg.connect(database_url) as other:
        other.execute(  # registered by another transaction, not yet committed
            "INSERT INTO orders (order_number, customer_id, customer_name, customer_type, amount, "
            "currency, order_date, status, version, creation_fingerprint, created_at, updated_at) "
            "VALUES (%s, 'C-1', 'Acme', 'enterprise', 1, 'CNY', '2026-11-20', 'pending', 1, %s, "
            "now(), now())",
            (command.order_number, creation_fingerprint(command)),
        )
        failure = _apply_until_other_commits(database_url, worker_conn, other, command)

    assert [type(error) for error in failure] == [ConcurrentRegistration]
    [again] = apply(worker_conn, command)
    assert (again.outcome, again.redelivered) == (CommandOutcome.DUPLICATE, False)


def _apply_until_other_commits(
    database_url: str, worker_conn: Conn, other: Conn, command: Any
) -> list[BaseException]:
    """Apply `command` in a thread until it waits on `other`'s lock; commit `other`; the errors."""
    failure: list[BaseException] = []

    def apply_meanwhile() -> None:
        try:
            apply(worker_conn, command)
        except Exception as error:
            failure.append(error)

    racing = threading.Thread(target=apply_meanwhile)
    racing.start()
    eventually(lambda: _waits_on_a_lock(database_url))
    other.commit()
    racing.join(timeout=30)
    return failure


def _waits_on_a_lock(database_url: str) -> bool:
    with psycopg.connect(database_url, autocommit=True) as probe:
        row = probe.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    return bool(row and row[0])
