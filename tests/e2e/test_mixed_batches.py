"""One batch mixing everything a busy queue holds: every guarantee still holds per command."""

from typing import Any

import psycopg

from contracts import Command
from tests.support.broker import QueueReader, publish_raw
from tests.support.commands import change_status, create_order, order_number
from worker.config import Settings
from worker.messaging.topology import Topology
from worker.messaging.upstream import publish_command

Conn = psycopg.Connection[tuple[Any, ...]]
StartWorkers = Any


def test_a_batch_of_moves_repeats_refusals_and_poison_applies_each_command_exactly_once(
    settings: Settings,
    topology: Topology,
    events: QueueReader,
    dead_letters: QueueReader,
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    first, second = order_number(), order_number()
    moves_of_first = [change_status(first, s) for s in ("in_progress", "processed", "completed")]
    refused = change_status(second, "completed")  # pending -> completed is not allowed
    moved_second = change_status(second, "in_progress")
    # Everything is queued before the worker starts, so it arrives as one batch.
    queued: list[Command] = [create_order(first), create_order(second), *moves_of_first[:2]]
    for command in queued:
        publish_command(settings.amqp_url, topology, command)
    publish_command(settings.amqp_url, topology, moves_of_first[0])  # a repeat
    publish_raw(
        settings.amqp_url,
        topology.commands_exchange,
        "order.status.change",
        b'{"command_id": "unfinished',
        content_type="application/json",
        message_id="poison-in-batch",
        delivery_mode=2,
    )
    for command in [refused, moves_of_first[2], moved_second]:
        publish_command(settings.amqp_url, topology, command)

    start_workers(with_settings=settings.model_copy(update={"batch_size": 50}))

    received = events.take(7)
    [letter] = dead_letters.take(1)
    assert letter.headers["x-dead-letter-reason"] == "malformed_json"
    assert letter.properties.message_id == "poison-in-batch"
    assert [(e.properties.type, e.headers["order_number"]) for e in received] == [
        ("OrderCreated", first),
        ("OrderCreated", second),
        ("OrderStatusChanged", first),
        ("OrderStatusChanged", first),
        ("OrderStatusChangeRejected", second),
        ("OrderStatusChanged", first),
        ("OrderStatusChanged", second),
    ]
    changes = [e.json() for e in received if e.properties.type == "OrderStatusChanged"]
    assert [
        (c["order_number"], c["from_status"], c["to_status"], c["version"]) for c in changes
    ] == [
        (first, "pending", "in_progress", 2),
        (first, "in_progress", "processed", 3),
        (first, "processed", "completed", 4),
        (second, "pending", "in_progress", 2),
    ]
    history = db.execute(
        "SELECT order_number, from_status, to_status, version FROM order_status_history ORDER BY id"
    ).fetchall()
    assert history == [
        (first, None, "pending", 1),
        (second, None, "pending", 1),
        (first, "pending", "in_progress", 2),
        (first, "in_progress", "processed", 3),
        (first, "processed", "completed", 4),
        (second, "pending", "in_progress", 2),
    ]
    outcomes: dict[Any, str] = dict(
        db.execute("SELECT command_id, outcome || ':' || deliveries FROM processed_commands")
    )
    assert outcomes[moves_of_first[0].command_id] == "applied:2"
    assert outcomes[refused.command_id] == "rejected:1"
    assert outcomes[moved_second.command_id] == "applied:1"
    assert len(outcomes) == 7
    [(batches,)] = db.execute("SELECT count(DISTINCT processed_at) FROM processed_commands")
    assert batches == 1, "the commands were meant to be applied as one batch"
    orders: dict[str, str] = dict(
        db.execute("SELECT order_number, status || ':' || version FROM orders")
    )
    assert orders == {first: "completed:4", second: "in_progress:2"}
    assert events.drain() == []
