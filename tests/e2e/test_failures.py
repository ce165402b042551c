"""The workers under failure: lost connections, a crash between commit and ack, bad batches.

Network failures are real: the workers reach RabbitMQ through a loopback TCP
proxy whose connections the test cuts, and PostgreSQL sessions are terminated
with pg_terminate_backend.
"""

import json
import logging
from typing import Any

import pika
import psycopg
import pytest

from contracts import COMMANDS_BY_TYPE
from tests.support.broker import QueueReader, message_count
from tests.support.commands import change_status, create_order, order_number
from tests.support.proxy import CuttableProxy, through
from tests.support.waiting import eventually
from worker.config import Settings
from worker.messaging.topology import Topology
from worker.messaging.upstream import publish_command

Conn = psycopg.Connection[tuple[Any, ...]]
StartWorkers = Any


def publish_together(settings: Settings, topology: Topology, *commands: Any) -> None:
    """Publish on one channel back to back, so the commands arrive in one batch."""
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    try:
        channel = connection.channel()
        for command in commands:
            kind = COMMANDS_BY_TYPE[type(command).__name__]
            channel.basic_publish(
                topology.commands_exchange,
                kind.routing_key,
                command.model_dump_json().encode(),
                pika.BasicProperties(content_type="application/json", delivery_mode=2),
            )
        channel.confirm_delivery()  # a round trip: both have reached the broker
    finally:
        connection.close()


def deliveries(db: Conn, command_id: Any) -> int:
    row = db.execute(
        "SELECT deliveries FROM processed_commands WHERE command_id = %s", (command_id,)
    ).fetchone()
    return int(row[0]) if row else 0


def counts(db: Conn) -> tuple[int, int, int]:
    """History rows, outbox rows for changes, distinct orders."""
    row = db.execute(
        """SELECT (SELECT count(*) FROM order_status_history),
                  (SELECT count(*) FROM outbox WHERE message_type <> 'OrderStatusChangeRejected'),
                  (SELECT count(*) FROM orders)"""
    ).fetchone()
    assert row is not None
    return (int(row[0]), int(row[1]), int(row[2]))


def lock_timeouts(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "LockNotAvailable" in r.getMessage()]


def worker_backend_waiting_on_lock(db: Conn, namespace: str) -> bool:
    row = db.execute(
        """SELECT count(*) FROM pg_stat_activity
           WHERE application_name = %s AND wait_event_type = 'Lock'""",
        (f"order-status:{namespace}:status-worker",),
    ).fetchone()
    return bool(row and row[0])


def test_a_connection_lost_after_commit_and_before_ack_leaves_exactly_one_effect(
    settings: Settings,
    topology: Topology,
    broker_proxy: CuttableProxy,
    start_workers: StartWorkers,
    database_url: str,
    db: Conn,
) -> None:
    """The commit happens, the ack never reaches the broker, the command comes back."""
    start_workers(
        "status-worker", with_settings=through(broker_proxy, settings, lock_timeout_ms=60_000)
    )
    number = order_number()
    publish_command(settings.amqp_url, topology, create_order(number))
    eventually(lambda: counts(db)[2] == 1)
    change = change_status(number, "in_progress")

    with psycopg.connect(database_url) as blocker:
        # Hold the order's row lock so the worker stops inside its transaction.
        blocker.execute("SELECT 1 FROM orders WHERE order_number = %s FOR UPDATE", (number,))
        publish_command(settings.amqp_url, topology, change)
        eventually(lambda: worker_backend_waiting_on_lock(db, settings.namespace))
        broker_proxy.cut()  # the broker takes the unacked message back
        accepted_before = broker_proxy.connections_accepted
    # The blocker's transaction ends here: the worker commits, then cannot ack.

    eventually(lambda: deliveries(db, change.command_id) == 2, timeout=30)
    assert broker_proxy.connections_accepted > accepted_before, "the worker reconnected"
    assert counts(db) == (2, 2, 1)
    assert db.execute(
        "SELECT status, version FROM orders WHERE order_number = %s", (number,)
    ).fetchone() == ("in_progress", 2)
    eventually(lambda: message_count(settings.amqp_url, topology.status_worker_queue) == 0)


def test_terminated_database_sessions_are_reconnected_and_nothing_is_applied_twice(
    settings: Settings,
    topology: Topology,
    events: QueueReader,
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    start_workers()
    numbers = [order_number() for _ in range(30)]

    def terminate_worker_sessions() -> int:
        row = db.execute(
            """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
               WHERE application_name LIKE %s""",
            (f"order-status:{settings.namespace}:%",),
        ).fetchone()
        return int(row[0]) if row else 0

    terminated = 0
    for index, number in enumerate(numbers):
        for command in (create_order(number), change_status(number, "in_progress")):
            publish_command(settings.amqp_url, topology, command)
        if index % 10 == 5:
            # A worker between sessions has none to lose: wait until one is there.
            terminated += eventually(terminate_worker_sessions)

    eventually(lambda: counts(db) == (60, 60, 30), timeout=30)
    received = events.take(60, timeout=30) + events.drain(settle_seconds=0.5)
    assert terminated >= 3
    assert len({r.properties.message_id for r in received}) == 60
    assert db.execute(
        "SELECT count(*) FROM orders WHERE status = 'in_progress' AND version = 2"
    ).fetchone() == (30,)


def test_cut_broker_connections_are_reconnected_and_every_command_applies_once(
    settings: Settings,
    topology: Topology,
    events: QueueReader,
    broker_proxy: CuttableProxy,
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    start_workers(with_settings=through(broker_proxy, settings))
    numbers = [order_number() for _ in range(30)]
    for index, number in enumerate(numbers):
        for command in (create_order(number), change_status(number, "in_progress")):
            publish_command(settings.amqp_url, topology, command)
        if index % 10 == 5:
            broker_proxy.cut()

    eventually(lambda: counts(db) == (60, 60, 30), timeout=30)
    received = events.take_until(
        lambda got: len({r.properties.message_id for r in got}) >= 60, timeout=30
    )
    # A relay cut between the broker's confirm and marking the row publishes the
    # event again; consumers drop the repeat by message_id (= event_id).
    assert len({r.properties.message_id for r in received}) == 60
    assert broker_proxy.connections_accepted >= 4
    eventually(lambda: message_count(settings.amqp_url, topology.status_worker_queue) == 0)


def test_a_lock_timeout_is_retried_in_place_without_a_redelivery(
    settings: Settings,
    topology: Topology,
    start_workers: StartWorkers,
    database_url: str,
    db: Conn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="worker")
    start_workers(
        "status-worker", with_settings=settings.model_copy(update={"lock_timeout_ms": 100})
    )
    number = order_number()
    publish_command(settings.amqp_url, topology, create_order(number))
    eventually(lambda: counts(db)[2] == 1)
    change = change_status(number, "completed", expected_status="pending")
    proceed = change_status(number, "in_progress")

    with psycopg.connect(database_url) as blocker:
        blocker.execute("SELECT 1 FROM orders WHERE order_number = %s FOR UPDATE", (number,))
        publish_command(settings.amqp_url, topology, proceed)
        publish_command(settings.amqp_url, topology, change)
        # Several lock timeouts pass while the lock is held; each is retried.
        eventually(lambda: len(lock_timeouts(caplog)) >= 2)

    eventually(lambda: deliveries(db, change.command_id) == 1)
    assert deliveries(db, proceed.command_id) == 1
    assert db.execute(
        "SELECT outcome, reason FROM processed_commands WHERE command_id = %s", (change.command_id,)
    ).fetchone() == ("rejected", "version_conflict")
    assert counts(db) == (2, 2, 1)
    outcomes = [r for r in caplog.records if hasattr(r, "broker_redelivered")]
    assert len(outcomes) == 3, "each command's outcome was logged once"
    assert not [r for r in outcomes if r.broker_redelivered], "no message came back from the broker"


def test_a_batch_that_cannot_commit_is_split_and_only_the_culprit_is_dead_lettered(
    settings: Settings,
    topology: Topology,
    dead_letters: QueueReader,
    start_workers: StartWorkers,
    db: Conn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An administrator adds a constraint that one order's move breaks; the worker cannot know."""
    start_workers("status-worker", with_settings=settings.model_copy(update={"batch_wait_ms": 300}))
    doomed, fine = order_number(), order_number()
    for number in (doomed, fine):
        publish_command(settings.amqp_url, topology, create_order(number))
        publish_command(settings.amqp_url, topology, change_status(number, "in_progress"))
    eventually(lambda: counts(db) == (4, 4, 2))
    db.execute(
        "ALTER TABLE orders ADD CONSTRAINT frozen_by_finance"
        f" CHECK (order_number <> '{doomed}' OR status = 'in_progress')"
    )

    to_processed = change_status(doomed, "processed")
    to_completed = change_status(fine, "completed")
    publish_together(settings, topology, to_processed, to_completed)

    [letter] = dead_letters.take(1)
    assert letter.headers["x-dead-letter-reason"] == "apply_failed"
    assert "CheckViolation" in letter.headers["x-dead-letter-detail"]
    assert json.loads(letter.body)["command_id"] == str(to_processed.command_id)
    eventually(lambda: deliveries(db, to_completed.command_id) == 1)
    assert deliveries(db, to_processed.command_id) == 0
    assert db.execute(
        "SELECT order_number, status FROM orders ORDER BY order_number = %s", (fine,)
    ).fetchall() == [(doomed, "in_progress"), (fine, "completed")]
    assert [r for r in caplog.records if r.getMessage().startswith("batch failed")]
    eventually(lambda: message_count(settings.amqp_url, topology.status_worker_queue) == 0)


def test_a_status_retired_under_a_running_worker_is_rejected_not_dead_lettered(
    settings: Settings,
    topology: Topology,
    events: QueueReader,
    dead_letters: QueueReader,
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    """The worker's copy of the workflow still allows the move; the database no longer does."""
    keeps_its_copy = settings.model_copy(update={"workflow_refresh_seconds": 3600})
    start_workers("status-worker", "relay", with_settings=keeps_its_copy)
    number = order_number()
    publish_command(settings.amqp_url, topology, create_order(number))
    publish_command(settings.amqp_url, topology, change_status(number, "in_progress"))
    assert len(events.take(2)) == 2
    db.execute("DELETE FROM order_status_transitions WHERE 'processed' IN (from_status, to_status)")
    db.execute("DELETE FROM order_statuses WHERE code = 'processed'")

    to_processed = change_status(number, "processed")
    publish_command(settings.amqp_url, topology, to_processed)

    [rejected] = events.take(1)
    assert rejected.routing_key == "order.status.rejected"
    assert rejected.json()["reason"] == "unknown_status"
    assert db.execute(
        "SELECT outcome, reason FROM processed_commands WHERE command_id = %s",
        (to_processed.command_id,),
    ).fetchone() == ("rejected", "unknown_status")
    assert db.execute("SELECT status FROM orders").fetchone() == ("in_progress",)
    assert dead_letters.drain() == []


def test_a_read_only_database_holds_commands_instead_of_dead_lettering_them(
    settings: Settings,
    topology: Topology,
    dead_letters: QueueReader,
    start_workers: StartWorkers,
    broker_proxy: CuttableProxy,
    db: Conn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As after a failover to a standby: every write fails, and no command is to blame.

    The broker connection is cut meanwhile too: the worker reconnects to it rather
    than blaming a command for the broker's error.
    """
    start_workers("status-worker", with_settings=through(broker_proxy, settings))
    first = create_order(order_number())
    publish_command(settings.amqp_url, topology, first)
    eventually(lambda: counts(db)[2] == 1)
    name = db.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
    db.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE %s",
        (f"order-status:{settings.namespace}:%",),
    )
    held = [create_order(order_number()) for _ in range(3)]
    for command in held:
        publish_command(settings.amqp_url, topology, command)
    eventually(lambda: any("ReadOnlySqlTransaction" in r.getMessage() for r in caplog.records))
    broker_proxy.cut()
    assert dead_letters.drain(settle_seconds=1.5) == []
    assert counts(db)[2] == 1

    db.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')

    eventually(lambda: counts(db) == (4, 4, 4), timeout=30)
    assert dead_letters.drain() == []


def test_the_active_consumer_keeps_the_order_of_one_order_s_commands(
    settings: Settings,
    topology: Topology,
    events: QueueReader,
    start_workers: StartWorkers,
    db: Conn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Several status workers run for availability; one consumes at a time."""
    caplog.set_level(logging.DEBUG, logger="worker")  # a failure shows who applied what
    start_workers("status-worker", "relay")
    start_workers("status-worker")
    number = order_number()
    commands = [
        create_order(number),
        change_status(number, "in_progress"),
        change_status(number, "processed"),
        change_status(number, "completed"),
        change_status(number, "in_progress"),
        change_status(number, "cancelled"),
    ]
    publish_together(settings, topology, *commands)

    received = events.take(len(commands))

    assert [r.json()["version"] for r in received] == [1, 2, 3, 4, 5, 6]
    assert db.execute(
        "SELECT count(*) FROM processed_commands WHERE outcome <> 'applied'"
    ).fetchone() == (0,)
