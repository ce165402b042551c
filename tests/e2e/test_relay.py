"""The outbox relay: one leader, idle connections that stay up, refused events that wait."""

from typing import Any
from uuid import uuid4

import pika
import psycopg

from tests.conftest import RunningWorkers
from tests.support.broker import QueueReader, Received
from tests.support.commands import change_status, create_order, order_number
from tests.support.proxy import CuttableProxy, through
from tests.support.waiting import eventually
from worker.config import Settings
from worker.db import outbox
from worker.domain.outbox import OutboxMessage
from worker.messaging.topology import Topology
from worker.messaging.upstream import publish_command

Conn = psycopg.Connection[tuple[Any, ...]]
StartWorkers = Any

RELAY_LOCK_HOLDERS = """
SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = %s
"""


def relay_leaders(db: Conn, namespace: str) -> int:
    row = db.execute(RELAY_LOCK_HOLDERS, (f"order-status:{namespace}:relay",)).fetchone()
    return int(row[0]) if row else 0


def unpublished(db: Conn) -> int:
    row = db.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()
    return int(row[0]) if row else 0


def test_a_standby_relay_takes_over_and_events_are_not_doubled(
    settings: Settings,
    topology: Topology,
    events: QueueReader,
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    start_workers("status-worker")
    leader: RunningWorkers = start_workers("relay")
    eventually(lambda: relay_leaders(db, settings.namespace) == 1)
    start_workers("relay")  # the standby
    numbers = [order_number() for _ in range(5)]
    for number in numbers:
        publish_command(settings.amqp_url, topology, create_order(number))
    before = events.take(5) + events.drain(settle_seconds=0.5)

    assert leader.stop() is True
    for number in numbers:
        publish_command(settings.amqp_url, topology, change_status(number, "in_progress"))
    after = events.take(5, timeout=20) + events.drain(settle_seconds=0.5)

    assert [r.routing_key for r in before] == ["order.created"] * 5
    assert [r.routing_key for r in after] == ["order.status.changed"] * 5
    assert len({r.properties.message_id for r in before + after}) == 10
    assert relay_leaders(db, settings.namespace) == 1
    assert unpublished(db) == 0


def test_an_idle_relay_keeps_its_connection_across_heartbeats(
    settings: Settings,
    topology: Topology,
    events: QueueReader,
    broker_proxy: CuttableProxy,
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    quick_heartbeats = through(broker_proxy, settings, heartbeat_seconds=1, relay_sweep_seconds=0.5)
    start_workers("relay", with_settings=quick_heartbeats)
    eventually(lambda: relay_leaders(db, settings.namespace) == 1)
    connections = broker_proxy.connections_accepted

    events.drain(settle_seconds=4.0)  # four heartbeat intervals of idleness

    assert broker_proxy.connections_accepted == connections, "the relay had to reconnect"
    start_workers("status-worker")
    publish_command(settings.amqp_url, topology, create_order(order_number()))
    [created] = events.take(1)
    assert created.routing_key == "order.created"


def test_an_event_the_broker_refuses_waits_and_nothing_overtakes_it(
    settings: Settings,
    topology: Topology,
    events: QueueReader,
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    """A consumer's queue is full and refuses publishes: the outbox holds the rest back."""
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    channel = connection.channel()
    full = f"{settings.namespace}.test-full"
    channel.queue_declare(
        full, exclusive=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
    )
    channel.queue_bind(full, topology.events_exchange, routing_key="#")
    start_workers()
    number = order_number()
    for command in (
        create_order(number),
        change_status(number, "in_progress"),
        change_status(number, "completed"),
    ):
        publish_command(settings.amqp_url, topology, command)

    eventually(lambda: db.execute("SELECT count(*) FROM outbox").fetchone() == (3,))
    eventually(lambda: unpublished(db) == 2)
    held_back = [
        r.json()["version"]
        for r in events.take_until(lambda got: versions_of(got).count(2) >= 3, timeout=15)
    ]
    assert unpublished(db) == 2, "the refused event and the one after it still wait"
    assert held_back.count(3) <= 1, "retries offer the refused event alone"
    assert first_seen_order(held_back) in ([1, 2], [1, 2, 3])

    channel.queue_delete(full)  # the consumer is gone; nothing refuses any more
    connection.close()

    eventually(lambda: unpublished(db) == 0, timeout=30)
    later = versions_of(events.take_until(lambda got: 3 in versions_of(got)))
    seen = held_back + later
    last = {version: len(seen) - 1 - seen[::-1].index(version) for version in (2, 3)}
    assert last[2] < last[3], f"version 3 overtook version 2: {seen}"


def versions_of(received: list[Received]) -> list[int]:
    return [int(r.json()["version"]) for r in received]


def first_seen_order(versions: list[int]) -> list[int]:
    return list(dict.fromkeys(versions))


def test_an_event_committed_after_a_later_one_was_sent_is_still_published(
    settings: Settings,
    events: QueueReader,
    start_workers: StartWorkers,
    database_url: str,
    db: Conn,
) -> None:
    """The status and rules workers write the outbox concurrently: ids commit out of order."""
    start_workers("relay")
    earlier, later = _outbox_message("TaskCreated-earlier"), _outbox_message("TaskCreated-later")
    with psycopg.connect(database_url) as slow:
        with slow.cursor() as cur:
            outbox.enqueue_message(cur, earlier)  # takes the lower id, commits last
        with psycopg.connect(database_url) as fast, fast.cursor() as cur:
            outbox.enqueue_message(cur, later)
            outbox.notify_relay(cur)
        [first] = events.take(1)
        assert first.properties.message_id == str(later.message_id)
        with slow.cursor() as cur:
            outbox.notify_relay(cur)
        slow.commit()

    [second] = events.take(1)
    assert second.properties.message_id == str(earlier.message_id)
    eventually(lambda: unpublished(db) == 0)


def _outbox_message(label: str) -> OutboxMessage:
    return OutboxMessage(
        message_id=uuid4(),
        exchange=None,
        routing_key="task.created",
        message_type="TaskCreated",
        payload={"label": label},
        order_number=order_number(),
        causation_id=uuid4(),
        correlation_id=None,
    )
