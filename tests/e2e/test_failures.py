"""The workers under failure: lost connections, a crash between commit and ack, bad batches.

Network failures are real: the workers reach RabbitMQ through a loopback TCP
proxy whose connections the test cuts, and PostgreSQL sessions are terminated
with pg_terminate_backend.
"""

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.conftest import RunningWorkers
from tests.support.broker import QueueReader, message_count
from tests.support.commands import change_status, create_order, order_number
from tests.support.proxy import CuttableProxy
from tests.support.waiting import eventually
from worker.config import Settings
from worker.messaging.topology import Topology
from worker.messaging.upstream import publish_command

Conn = psycopg.Connection[tuple[Any, ...]]
StartWorkers = Any


@pytest.fixture
def broker_proxy(settings: Settings) -> Iterator[CuttableProxy]:
    target = urlsplit(settings.amqp_url)
    proxy = CuttableProxy(target.hostname or "127.0.0.1", target.port or 5672)
    yield proxy
    proxy.close()


def through(proxy: CuttableProxy, settings: Settings, **changes: Any) -> Settings:
    """The same settings, but reaching RabbitMQ through `proxy`."""
    url = urlsplit(settings.amqp_url)
    netloc = f"{url.username}:{url.password}@127.0.0.1:{proxy.port}"
    return settings.model_copy(update={"amqp_url": url._replace(netloc=netloc).geturl(), **changes})


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
    terminated = 0
    for index, number in enumerate(numbers):
        for command in (create_order(number), change_status(number, "in_progress")):
            publish_command(settings.amqp_url, topology, command)
        if index % 10 == 5:
            row = db.execute(
                """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                   WHERE application_name LIKE %s""",
                (f"order-status:{settings.namespace}:%",),
            ).fetchone()
            terminated += int(row[0]) if row else 0

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
) -> None:
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
        eventually(lambda: worker_backend_waiting_on_lock(db, settings.namespace))
        db.execute("SELECT pg_sleep(0.5)")

    eventually(lambda: deliveries(db, change.command_id) == 1)
    assert deliveries(db, proceed.command_id) == 1
    assert db.execute(
        "SELECT outcome, reason FROM processed_commands WHERE command_id = %s", (change.command_id,)
    ).fetchone() == ("rejected", "version_conflict")
    assert counts(db) == (2, 2, 1)


def test_a_batch_that_cannot_commit_is_split_and_only_the_culprit_is_dead_lettered(
    settings: Settings,
    topology: Topology,
    dead_letters: QueueReader,
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    """The workflow changes under a running worker, whose cached copy still allows a move."""
    start_workers("status-worker", with_settings=settings.model_copy(update={"batch_wait_ms": 300}))
    doomed, fine = order_number(), order_number()
    for number in (doomed, fine):
        publish_command(settings.amqp_url, topology, create_order(number))
        publish_command(settings.amqp_url, topology, change_status(number, "in_progress"))
    eventually(lambda: counts(db) == (4, 4, 2))
    # An administrator retires the 'processed' status while the worker runs.
    db.execute("DELETE FROM order_status_transitions WHERE 'processed' IN (from_status, to_status)")
    db.execute("DELETE FROM order_statuses WHERE code = 'processed'")

    to_processed = change_status(doomed, "processed")
    to_completed = change_status(fine, "completed")
    for command in (to_processed, to_completed):
        publish_command(settings.amqp_url, topology, command)

    [letter] = dead_letters.take(1)
    assert letter.headers["x-dead-letter-reason"] == "apply_failed"
    assert "ForeignKeyViolation" in letter.headers["x-dead-letter-detail"]
    assert letter.properties.message_id == str(to_processed.command_id)
    eventually(lambda: deliveries(db, to_completed.command_id) == 1)
    assert deliveries(db, to_processed.command_id) == 0
    assert db.execute(
        "SELECT order_number, status FROM orders ORDER BY order_number = %s", (fine,)
    ).fetchall() == [(doomed, "in_progress"), (fine, "completed")]
    eventually(lambda: message_count(settings.amqp_url, topology.status_worker_queue) == 0)


def test_a_standby_relay_takes_over_and_events_are_not_doubled(
    settings: Settings,
    topology: Topology,
    events: QueueReader,
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    start_workers("status-worker")
    first: RunningWorkers = start_workers("relay")
    start_workers("relay")
    numbers = [order_number() for _ in range(5)]
    for number in numbers:
        publish_command(settings.amqp_url, topology, create_order(number))
    before = events.take(5) + events.drain(settle_seconds=0.5)

    assert first.stop() is True
    for number in numbers:
        publish_command(settings.amqp_url, topology, change_status(number, "in_progress"))
    after = events.take(5, timeout=20) + events.drain(settle_seconds=0.5)

    assert [r.routing_key for r in before] == ["order.created"] * 5
    assert [r.routing_key for r in after] == ["order.status.changed"] * 5
    assert len({r.properties.message_id for r in before + after}) == 10
    assert db.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone() == (0,)
