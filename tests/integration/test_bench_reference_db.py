"""The reference pipeline's database write: the product's tables, one statement per batch."""

import json
import uuid
from typing import Any

import psycopg

from worker.bench.reference_db import Change, apply_batch, insert_orders

Conn = psycopg.Connection[tuple[Any, ...]]


def test_a_batch_moves_its_orders_records_each_change_once_and_returns_its_events(
    db: Conn, database_url: str
) -> None:
    insert_orders(database_url, ["REF-1", "REF-2"], "pending")
    first = Change(str(uuid.uuid4()), "REF-1", "in_progress")
    second = Change(str(uuid.uuid4()), "REF-1", "processed")
    other = Change(str(uuid.uuid4()), "REF-2", "cancelled")

    with psycopg.connect(database_url, autocommit=True) as worker:
        events = apply_batch(worker, [first, second, first, other])
        again = apply_batch(worker, [second, other])

    assert [event.command_id for event in events] == [
        first.command_id,
        second.command_id,
        other.command_id,
    ]
    assert [json.loads(e.body)["version"] for e in events] == [2, 3, 2]
    assert again == []
    orders = db.execute("SELECT order_number, status, version FROM orders ORDER BY 1").fetchall()
    assert orders == [("REF-1", "processed", 3), ("REF-2", "cancelled", 2)]
    history = db.execute(
        "SELECT command_id::text, from_status, to_status, version FROM order_status_history "
        "ORDER BY order_number, version"
    ).fetchall()
    assert history == [
        (first.command_id, "pending", "in_progress", 2),
        (second.command_id, "in_progress", "processed", 3),
        (other.command_id, "pending", "cancelled", 2),
    ]
    outbox = db.execute("SELECT event_id::text FROM outbox ORDER BY id").fetchall()
    assert [row[0] for row in outbox] == [event.event_id for event in events]
    inbox = db.execute("SELECT count(*) FROM processed_commands").fetchone()
    assert inbox == (3,)
