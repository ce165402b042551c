"""The outbox: events written with the change that caused them, read by the relay.

The status worker enqueues inside its transaction and NOTIFYs at commit; the
relay, holding a session advisory lock so only one relay publishes, reads the
unpublished rows in id order and marks them once the broker has confirmed.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor, sql
from psycopg.types.json import Jsonb

from worker.db.connection import Connection
from worker.domain.outbox import OutboxMessage

OUTBOX_CHANNEL = "order_status_outbox"
"""PostgreSQL NOTIFY channel that wakes the relay when events were written."""

RELAY_LOCK = "order-status:outbox-relay"
"""Advisory lock held by the one relay that publishes."""

NOTIFY_RELAY = "SELECT pg_notify(%(channel)s, '')"

TRY_RELAY_LOCK = "SELECT pg_try_advisory_lock(hashtext(%(lock)s))"

SELECT_UNPUBLISHED = """
SELECT id, event_id, routing_key, message_type, payload::text, order_number, command_id,
       correlation_id, created_at, exchange
FROM outbox
WHERE published_at IS NULL AND NOT (id = ANY(%(in_flight)s))
ORDER BY id
LIMIT %(limit)s
"""

MARK_PUBLISHED = "UPDATE outbox SET published_at = now() WHERE id = ANY(%(ids)s)"


@dataclass(frozen=True)
class PendingEvent:
    """An outbox row waiting to be published."""

    id: int
    event_id: UUID
    routing_key: str
    message_type: str
    payload: str
    order_number: str
    command_id: UUID
    correlation_id: str | None
    created_at: datetime
    exchange: str | None = None
    """None for the events exchange; `commands` or `notifications` for what rules send."""


INSERT_OUTBOX_MESSAGE = """
INSERT INTO outbox (
    event_id, exchange, routing_key, message_type, payload, order_number, command_id,
    correlation_id
) VALUES (
    %(message_id)s, %(exchange)s, %(routing_key)s, %(message_type)s, %(payload)s,
    %(order_number)s, %(causation_id)s, %(correlation_id)s
)
ON CONFLICT (event_id) DO NOTHING
"""


def enqueue_message(cur: Cursor[Any], message: OutboxMessage) -> None:
    """Write `message` to the outbox; a message id already there is left as it is."""
    cur.execute(
        INSERT_OUTBOX_MESSAGE,
        {
            "message_id": message.message_id,
            "exchange": message.exchange,
            "routing_key": message.routing_key,
            "message_type": message.message_type,
            "payload": Jsonb(message.payload),
            "order_number": message.order_number,
            "causation_id": message.causation_id,
            "correlation_id": message.correlation_id,
        },
    )


def notify_relay(cur: Cursor[Any]) -> None:
    """Wake the relay when the current transaction commits."""
    cur.execute(NOTIFY_RELAY, {"channel": OUTBOX_CHANNEL})


def try_relay_lock(conn: Connection) -> bool:
    """Take the relay's advisory lock for this session if no other relay holds it."""
    row = conn.execute(TRY_RELAY_LOCK, {"lock": RELAY_LOCK}).fetchone()
    return bool(row and row[0])


def listen_for_commits(conn: Connection) -> None:
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(OUTBOX_CHANNEL)))


def wait_for_commits(conn: Connection, timeout: float) -> bool:
    """Return at the next NOTIFY from a worker (True), or after `timeout` seconds (False).

    A timeout of 0 only looks at what has arrived already.
    """
    return any(True for _notification in conn.notifies(timeout=timeout, stop_after=1))


def unpublished(conn: Connection, limit: int, in_flight: Sequence[int] = ()) -> list[PendingEvent]:
    """The oldest unpublished events but those `in_flight` (sent, awaiting their confirm).

    Not "after the last id sent": the status and rules workers write to the
    outbox concurrently, so a lower id can commit after a higher one was read.
    """
    rows = conn.execute(SELECT_UNPUBLISHED, {"limit": limit, "in_flight": list(in_flight)})
    return [PendingEvent(*row) for row in rows]


def mark_published(conn: Connection, events: list[PendingEvent]) -> None:
    if events:
        conn.execute(MARK_PUBLISHED, {"ids": [event.id for event in events]})
