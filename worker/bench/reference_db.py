"""The reference pipeline's database work: our schema and our write, trivial decisions.

Per batch, in one transaction: lock the batch's orders (in order-number order,
as the status worker does), read which of its commands the inbox already holds,
decide trivially (every new command moves its order to the status it asks for,
no workflow check), then write inbox, orders, history and outbox in one
set-based statement over binary arrays, and commit. The tables, indexes and
triggers are the product's, from `migrations/`, so every row costs what it costs
the product. What the reference leaves out is the product's processing: decoding
into contracts, the workflow, fingerprints, rejections, repeat counting, rules,
and the relay (the caller publishes the events itself once the commit returned).
"""

import json
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from contracts import EVENTS_BY_TYPE

STATUS_CHANGED = EVENTS_BY_TYPE["OrderStatusChanged"]


@dataclass(frozen=True)
class Change:
    """One status change as the reference reads it from a command's body."""

    command_id: str
    order_number: str
    to_status: str


@dataclass(frozen=True)
class Event:
    """One event to publish: what the reference writes to the outbox and sends."""

    event_id: str
    command_id: str
    body: bytes


LOCK_ORDERS = """
SELECT order_number, status, version FROM orders
WHERE order_number = ANY(%(numbers)b::text[])
ORDER BY order_number
FOR UPDATE
"""

READ_INBOX = """
SELECT p.command_id::text
FROM unnest(%(ids)b::uuid[]) AS b (command_id) JOIN processed_commands p USING (command_id)
"""

WRITE = """
WITH claimed AS (
    INSERT INTO processed_commands (
        command_id, command_type, order_number, outcome, fingerprint, processed_at, last_seen_at
    )
    SELECT command_id, 'ChangeOrderStatus', order_number, 'applied', '', now(), now()
    FROM unnest(%(c_id)b::uuid[], %(c_order)b::text[]) AS c (command_id, order_number)
), moved AS (
    UPDATE orders SET status = m.status, version = m.version, updated_at = now()
    FROM unnest(%(m_order)b::text[], %(m_status)b::text[], %(m_version)b::integer[])
        AS m (order_number, status, version)
    WHERE orders.order_number = m.order_number
), history AS (
    INSERT INTO order_status_history (
        order_number, from_status, to_status, version, actor, changed_at, command_id
    )
    SELECT order_number, from_status, to_status, version, 'reference', now(), command_id
    FROM unnest(
        %(h_order)b::text[], %(h_from)b::text[], %(h_to)b::text[], %(h_version)b::integer[],
        %(h_id)b::uuid[]
    ) AS h (order_number, from_status, to_status, version, command_id)
)
INSERT INTO outbox (event_id, routing_key, message_type, payload, order_number, command_id)
SELECT event_id, %(routing_key)s, %(message_type)s, payload::jsonb, order_number, command_id
FROM unnest(%(e_id)b::uuid[], %(e_payload)b::text[], %(e_order)b::text[], %(e_command)b::uuid[])
    AS e (event_id, payload, order_number, command_id)
"""


def event_for(change: Change, from_status: str | None, version: int | None) -> Event:
    event_id = str(uuid.uuid4())
    body = {
        "event_id": event_id,
        "order_number": change.order_number,
        "from_status": from_status,
        "to_status": change.to_status,
        "version": version,
        "command_id": change.command_id,
    }
    return Event(event_id, change.command_id, json.dumps(body).encode())


def apply_batch(connection: psycopg.Connection[Any], changes: list[Change]) -> list[Event]:
    """Apply `changes` in one transaction; return the events of the new ones, in order."""
    with connection.transaction():
        state = {
            number: (status, version)
            for number, status, version in connection.execute(
                LOCK_ORDERS, {"numbers": sorted({c.order_number for c in changes})}
            )
        }
        seen = {
            row[0]
            for row in connection.execute(READ_INBOX, {"ids": [c.command_id for c in changes]})
        }
        claimed: list[Change] = []
        history: list[tuple[str, str, str, int, str]] = []
        events: list[Event] = []
        for change in changes:
            if change.command_id in seen or change.order_number not in state:
                continue
            seen.add(change.command_id)
            status, version = state[change.order_number]
            state[change.order_number] = (change.to_status, version + 1)
            claimed.append(change)
            history.append(
                (change.order_number, status, change.to_status, version + 1, change.command_id)
            )
            events.append(event_for(change, status, version + 1))
        if claimed:
            moved = {c.order_number: state[c.order_number] for c in claimed}
            connection.execute(
                WRITE,
                {
                    "c_id": [c.command_id for c in claimed],
                    "c_order": [c.order_number for c in claimed],
                    "m_order": list(moved),
                    "m_status": [status for status, _ in moved.values()],
                    "m_version": [version for _, version in moved.values()],
                    "h_order": [h[0] for h in history],
                    "h_from": [h[1] for h in history],
                    "h_to": [h[2] for h in history],
                    "h_version": [h[3] for h in history],
                    "h_id": [h[4] for h in history],
                    "routing_key": STATUS_CHANGED.routing_key,
                    "message_type": "OrderStatusChanged",
                    "e_id": [e.event_id for e in events],
                    "e_payload": [e.body.decode() for e in events],
                    "e_order": [c.order_number for c in claimed],
                    "e_command": [c.command_id for c in claimed],
                },
            )
    return events


def insert_orders(database_url: str, numbers: list[str], initial: str) -> None:
    """Create the reference's orders directly, at the workflow's initial status."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO orders (order_number, customer_id, customer_name, customer_type, amount,"
            " currency, order_date, status, version, creation_fingerprint, created_at, updated_at)"
            " SELECT n, 'C-000', 'Bench', 'vip', 100, 'CNY', current_date, %(initial)s, 1, '',"
            " now(), now() FROM unnest(%(numbers)s::text[]) AS n",
            {"numbers": numbers, "initial": initial},
        )
