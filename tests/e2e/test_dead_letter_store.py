"""Failures end in the dead-letter store with their reason, or are retried and applied once.

Faults are real: a row lock held from another connection makes the worker's
statements time out, a backend is terminated with pg_terminate_backend, and the
quorum queue's delivery limit drops a message that is never acked.
"""

import logging
from typing import Any

import pika
import psycopg
import pytest

from contracts import COMMANDS_BY_TYPE
from tests.support.broker import message_count, publish_amqp_raw, publish_raw
from tests.support.commands import change_status, create_order, order_number
from tests.support.waiting import eventually
from worker.config import Settings
from worker.messaging.broker import connect_declared
from worker.messaging.topology import Topology
from worker.messaging.upstream import publish_command

Conn = psycopg.Connection[tuple[Any, ...]]
StartWorkers = Any


def stored(db: Conn, **where: Any) -> list[dict[str, Any]]:
    """Rows of the dead-letter store matching every column = value in `where`."""
    clauses = " AND ".join(f"{column} = %({column})s" for column in where) or "true"
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            f"SELECT * FROM dead_letters WHERE {clauses} ORDER BY id", where
        ).fetchall()


def outcome(db: Conn, command_id: Any) -> tuple[str, int] | None:
    row = db.execute(
        "SELECT outcome, deliveries FROM processed_commands WHERE command_id = %s", (command_id,)
    ).fetchone()
    return (row[0], row[1]) if row else None


def history_rows(db: Conn, number: str) -> int:
    row = db.execute(
        "SELECT count(*) FROM order_status_history WHERE order_number = %s", (number,)
    ).fetchone()
    return int(row[0]) if row else 0


def worker_waits_on_lock(db: Conn, namespace: str) -> bool:
    row = db.execute(
        """SELECT count(*) FROM pg_stat_activity
           WHERE application_name = %s AND wait_event_type = 'Lock'""",
        (f"order-status:{namespace}:status-worker",),
    ).fetchone()
    return bool(row and row[0])


def retried(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("message will be tried again")]


def test_a_malformed_message_is_stored_with_its_reason_and_the_worker_carries_on(
    settings: Settings, topology: Topology, start_workers: StartWorkers, db: Conn
) -> None:
    start_workers()
    body = b'{"command_id": "not json'
    publish_raw(
        settings.amqp_url,
        topology.commands_exchange,
        "order.status.change",
        body,
        content_type="application/json",
        message_id="m-1",
        correlation_id="c-1",
        headers={"tenant": "acme", "raw": b"\x00\xff"},
    )
    number = order_number()
    after = create_order(number)
    publish_command(settings.amqp_url, topology, after)

    [row] = eventually(lambda: stored(db))
    assert row["reason"] == "malformed_json"
    assert "not valid JSON" in row["detail"]
    assert bytes(row["body"]) == body
    assert (row["source_queue"], row["original_exchange"], row["original_routing_key"]) == (
        topology.status_worker_queue,
        topology.commands_exchange,
        "order.status.change",
    )
    assert (row["message_id"], row["correlation_id"], row["state"]) == ("m-1", "c-1", "dead")
    assert row["headers"]["tenant"] == "acme"
    assert row["headers"]["raw"] == {"$bytes": "AP8="}
    assert row["properties"]["content_type"] == "application/json"
    assert row["attempts"] == 1
    assert row["first_failed_at"] == row["last_failed_at"]
    eventually(lambda: outcome(db, after.command_id) == ("applied", 1))
    eventually(lambda: message_count(settings.amqp_url, topology.dead_letter_queue) == 0)


def test_a_command_blocked_by_a_lock_waits_in_a_tier_and_is_then_applied_once(
    settings: Settings,
    topology: Topology,
    start_workers: StartWorkers,
    database_url: str,
    db: Conn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="worker")
    start_workers(with_settings=settings.model_copy(update={"lock_timeout_ms": 50}))
    number = order_number()
    publish_command(settings.amqp_url, topology, create_order(number))
    eventually(lambda: history_rows(db, number) == 1)
    change = change_status(number, "in_progress")

    with psycopg.connect(database_url) as blocker:
        blocker.execute("SELECT 1 FROM orders WHERE order_number = %s FOR UPDATE", (number,))
        publish_command(settings.amqp_url, topology, change)
        [first] = eventually(lambda: retried(caplog))
        assert (first.attempt, first.reason) == (1, "LockNotAvailable")
        assert first.tier == f"{topology.status_worker_queue}.retry.100ms"

    eventually(lambda: outcome(db, change.command_id) == ("applied", 1))
    assert history_rows(db, number) == 2
    assert db.execute("SELECT status, version FROM orders").fetchone() == ("in_progress", 2)
    assert stored(db) == []


def test_a_terminated_backend_is_retried_in_place_and_applied_once(
    settings: Settings,
    topology: Topology,
    start_workers: StartWorkers,
    database_url: str,
    db: Conn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Losing the session is an outage, not contention: no tier, no delivery spent."""
    caplog.set_level(logging.INFO, logger="worker")
    start_workers(with_settings=settings.model_copy(update={"lock_timeout_ms": 60_000}))
    number = order_number()
    publish_command(settings.amqp_url, topology, create_order(number))
    eventually(lambda: history_rows(db, number) == 1)
    change = change_status(number, "in_progress")

    with psycopg.connect(database_url) as blocker:
        blocker.execute("SELECT 1 FROM orders WHERE order_number = %s FOR UPDATE", (number,))
        publish_command(settings.amqp_url, topology, change)
        eventually(lambda: worker_waits_on_lock(db, settings.namespace))
        db.execute(
            """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
               WHERE application_name = %s AND wait_event_type = 'Lock'""",
            (f"order-status:{settings.namespace}:status-worker",),
        )
        eventually(lambda: worker_waits_on_lock(db, settings.namespace))  # tried again

    eventually(lambda: outcome(db, change.command_id) == ("applied", 1))
    assert history_rows(db, number) == 2
    assert retried(caplog) == []
    assert stored(db) == []


def test_a_fault_that_outlasts_every_tier_is_stored_as_retries_exhausted(
    settings: Settings,
    topology: Topology,
    start_workers: StartWorkers,
    database_url: str,
    db: Conn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="worker")
    start_workers(with_settings=settings.model_copy(update={"lock_timeout_ms": 50}))
    number = order_number()
    publish_command(settings.amqp_url, topology, create_order(number))
    eventually(lambda: history_rows(db, number) == 1)
    change = change_status(number, "in_progress")

    with psycopg.connect(database_url) as blocker:
        blocker.execute("SELECT 1 FROM orders WHERE order_number = %s FOR UPDATE", (number,))
        publish_command(settings.amqp_url, topology, change)
        [row] = eventually(lambda: stored(db), timeout=30)

    assert row["reason"] == "retries_exhausted"
    assert row["attempts"] == 3  # the first try, then one per tier (100ms, 300ms)
    assert "LockNotAvailable" in row["detail"]
    assert row["first_failed_at"] < row["last_failed_at"]
    assert (row["original_exchange"], row["original_routing_key"]) == (
        topology.commands_exchange,
        "order.status.change",
    )
    assert row["message_id"] == str(change.command_id)
    assert [r.attempt for r in retried(caplog)] == [1, 2]  # type: ignore[attr-defined]
    assert outcome(db, change.command_id) is None
    assert history_rows(db, number) == 1


def test_a_message_the_delivery_limit_drops_reaches_the_store(
    settings: Settings, start_workers: StartWorkers, db: Conn
) -> None:
    """A message that crash-loops its consumer: here a consumer that always gives it back."""
    limited = settings.model_copy(update={"delivery_limit": 2})
    topology = Topology.for_settings(limited)
    connect_declared(limited, "test", topology).release()
    start_workers("dead-letter-ingester", with_settings=limited)
    command = create_order(order_number())
    publish_command(settings.amqp_url, topology, command)

    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    try:
        channel = connection.channel()
        deliveries = channel.consume(topology.status_worker_queue, inactivity_timeout=5)
        for given_back, (method, _properties, _body) in enumerate(deliveries, start=1):
            assert method is not None, "the broker stopped delivering before its limit"
            channel.basic_nack(method.delivery_tag, requeue=True)
            if given_back == 3:  # delivered twice, then dropped at the third return
                break
        channel.cancel()
    finally:
        connection.close()

    [row] = eventually(lambda: stored(db))
    assert row["reason"] == "delivery_limit"
    assert row["source_queue"] == topology.status_worker_queue
    assert (row["original_exchange"], row["original_routing_key"]) == (
        topology.commands_exchange,
        "order.create",
    )
    assert row["message_id"] == str(command.command_id)
    assert row["detail"] is None
    assert row["attempts"] == 3
    assert row["headers"]["x-death"][0]["reason"] == "delivery_limit"


def test_commands_held_by_a_lock_keep_their_order_while_the_rest_of_the_batch_applies(
    settings: Settings,
    topology: Topology,
    start_workers: StartWorkers,
    database_url: str,
    db: Conn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="worker")
    slow_batches = {"lock_timeout_ms": 50, "batch_wait_ms": 300}
    start_workers(with_settings=settings.model_copy(update=slow_batches))
    locked, free = order_number(), order_number()
    for number in (locked, free):
        publish_command(settings.amqp_url, topology, create_order(number))
    eventually(lambda: history_rows(db, locked) + history_rows(db, free) == 2)
    start = change_status(locked, "in_progress")
    finish = change_status(locked, "completed")  # only allowed after `start`
    other = change_status(free, "cancelled")

    with psycopg.connect(database_url) as blocker:
        blocker.execute("SELECT 1 FROM orders WHERE order_number = %s FOR UPDATE", (locked,))
        publish_together(settings, topology, start, other, finish)
        eventually(lambda: len(retried(caplog)) >= 2)
        assert outcome(db, other.command_id) == ("applied", 1)
        assert outcome(db, start.command_id) is None

    eventually(lambda: outcome(db, finish.command_id) == ("applied", 1))
    assert outcome(db, start.command_id) == ("applied", 1)
    assert db.execute(
        "SELECT to_status FROM order_status_history WHERE order_number = %s ORDER BY version",
        (locked,),
    ).fetchall() == [("pending",), ("in_progress",), ("completed",)]
    held = [r for r in retried(caplog) if getattr(r, "reason", None) == "held_back"]
    assert held
    assert stored(db) == []


def publish_together(
    settings: Settings, topology: Topology, *commands: Any, first_failed_before: int = 0
) -> None:
    """Publish on one channel back to back, so the commands arrive in one batch.

    With `first_failed_before`, the first command arrives as one coming back
    from a retry tier after that many failures.
    """
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    try:
        channel = connection.channel()
        for index, command in enumerate(commands):
            kind = COMMANDS_BY_TYPE[type(command).__name__]
            exchange, headers = topology.commands_exchange, None
            if index == 0 and first_failed_before:
                exchange = topology.retry_return_exchange
                headers = {
                    "retry-queue": topology.status_worker_queue,
                    "x-retry-attempt": first_failed_before,
                }
            channel.basic_publish(
                exchange,
                kind.routing_key,
                command.model_dump_json().encode(),
                pika.BasicProperties(
                    content_type="application/json", delivery_mode=2, headers=headers
                ),
            )
        channel.confirm_delivery()  # a round trip: all have reached the broker
    finally:
        connection.close()


def test_a_dead_letter_the_database_refuses_is_stored_plainly_and_the_ingester_carries_on(
    settings: Settings, topology: Topology, start_workers: StartWorkers, db: Conn
) -> None:
    """An administrator's constraint stands in for any content the table cannot take."""
    db.execute("ALTER TABLE dead_letters ADD CONSTRAINT no_tenant CHECK (NOT headers ? 'tenant')")
    start_workers()
    for index, headers in enumerate([{"tenant": "acme"}, {"sender": "erp"}]):
        publish_raw(
            settings.amqp_url,
            topology.commands_exchange,
            "order.create",
            b"not json",
            message_id=f"m-{index}",
            headers=headers,
        )

    refused, fine = eventually(lambda: stored(db) if len(stored(db)) == 2 else None)
    assert refused["message_id"] == "m-0"
    assert refused["reason"] == "malformed_json"
    assert bytes(refused["body"]) == b"not json"
    assert list(refused["headers"]) == ["x-store-error"]
    assert "CheckViolation" in refused["detail"]
    assert refused["detail"].startswith("body is not valid JSON")
    assert (fine["message_id"], fine["headers"]["sender"]) == ("m-1", "erp")
    eventually(lambda: message_count(settings.amqp_url, topology.dead_letter_queue) == 0)


@pytest.mark.parametrize("count", [2**62, 1e300, -7, 2.5, "many"])
def test_a_poison_attempt_count_is_stored_and_every_worker_carries_on(
    settings: Settings, topology: Topology, start_workers: StartWorkers, db: Conn, count: Any
) -> None:
    """`x-retry-attempt` comes from anyone who can publish; no value of it may stop a worker.

    (RabbitMQ takes an infinite double on publish but fails the channel when it
    delivers it; that case is covered by the parser's unit tests.)
    """
    start_workers()
    publish_amqp_raw(
        settings.amqp_url,
        topology.commands_exchange,
        "order.create",
        b"not json",
        message_id="through-the-worker",
        application_headers={"x-retry-attempt": count},
    )
    publish_amqp_raw(
        settings.amqp_url,
        topology.dead_letter_exchange,
        "order.create",
        b"not json",
        message_id="straight-to-the-store",
        application_headers={"x-retry-attempt": count, "x-dead-letter-reason": "malformed_json"},
    )
    rows = eventually(lambda: stored(db) if len(stored(db)) == 2 else None)
    assert sorted(row["message_id"] for row in rows) == [
        "straight-to-the-store",
        "through-the-worker",
    ]
    assert all(bytes(row["body"]) == b"not json" for row in rows)

    after = create_order(order_number())
    publish_command(settings.amqp_url, topology, after)
    publish_amqp_raw(
        settings.amqp_url, topology.dead_letter_exchange, "order.create", b"later", message_id="m"
    )
    eventually(lambda: outcome(db, after.command_id) == ("applied", 1))
    eventually(lambda: len(stored(db)) == 3)
    eventually(lambda: message_count(settings.amqp_url, topology.dead_letter_queue) == 0)


def test_a_command_held_back_behind_a_retried_one_waits_in_the_same_tier_after_it(
    settings: Settings,
    topology: Topology,
    start_workers: StartWorkers,
    database_url: str,
    db: Conn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The blocked command has failed before: the one behind it must not take an earlier tier."""
    caplog.set_level(logging.INFO, logger="worker")
    slow_batches = {"lock_timeout_ms": 50, "batch_wait_ms": 300}
    start_workers(with_settings=settings.model_copy(update=slow_batches))
    locked, free = order_number(), order_number()
    for number in (locked, free):
        publish_command(settings.amqp_url, topology, create_order(number))
    eventually(lambda: history_rows(db, locked) + history_rows(db, free) == 2)
    start = change_status(locked, "in_progress")
    finish = change_status(locked, "completed")  # only allowed after `start`
    other = change_status(free, "cancelled")

    with psycopg.connect(database_url) as blocker:
        blocker.execute("SELECT 1 FROM orders WHERE order_number = %s FOR UPDATE", (locked,))
        # `start` comes back from its first tier, as attempt 1 of the two (100ms, 300ms).
        publish_together(settings, topology, start, other, finish, first_failed_before=1)
        records = eventually(lambda: retried(caplog) if len(retried(caplog)) >= 2 else None)

    by_reason = {getattr(r, "reason", None): r for r in records}
    blocked, held = by_reason["LockNotAvailable"], by_reason["held_back"]
    assert (blocked.attempt, held.attempt) == (2, 2)
    assert blocked.tier == held.tier == f"{topology.status_worker_queue}.retry.300ms"
    assert records.index(blocked) < records.index(held)
    assert outcome(db, other.command_id) == ("applied", 1)
    # Lock gone, both come back in order and apply; or, still locked, both are dead-lettered.
    settled = eventually(
        lambda: (
            (outcome(db, start.command_id), outcome(db, finish.command_id))
            if outcome(db, finish.command_id) or len(stored(db)) == 2
            else None
        )
    )
    if settled[1] is None:
        assert sorted(row["reason"] for row in stored(db)) == ["retries_exhausted"] * 2
    else:
        assert settled == (("applied", 1), ("applied", 1))
        assert db.execute(
            "SELECT to_status FROM order_status_history WHERE order_number = %s ORDER BY version",
            (locked,),
        ).fetchall() == [("pending",), ("in_progress",), ("completed",)]
