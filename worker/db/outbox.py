"""The outbox: events written with the change that caused them, read by the relay.

The status worker enqueues inside its transaction and NOTIFYs at commit; the
relay, holding a session advisory lock so only one relay publishes, reads the
unpublished rows in id order and marks them once the broker has confirmed.
"""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from psycopg import sql

from worker.db.connection import Connection

OUTBOX_CHANNEL = "order_status_outbox"
"""PostgreSQL NOTIFY channel that wakes the relay when events were written."""

RELAY_LOCK = "order-status:outbox-relay"
"""Advisory lock held by the one relay that publishes."""

TRY_RELAY_LOCK = "SELECT pg_try_advisory_lock(hashtext(%(lock)s))"

SELECT_UNPUBLISHED = """
SELECT id, event_id, routing_key, message_type, payload::text, order_number, command_id,
       correlation_id, created_at
FROM outbox
WHERE published_at IS NULL
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


def try_relay_lock(conn: Connection) -> bool:
    """Take the relay's advisory lock for this session if no other relay holds it."""
    row = conn.execute(TRY_RELAY_LOCK, {"lock": RELAY_LOCK}).fetchone()
    return bool(row and row[0])


def listen_for_commits(conn: Connection) -> None:
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(OUTBOX_CHANNEL)))


def wait_for_commits(conn: Connection, timeout: float) -> None:
    """Return at the next NOTIFY from a status worker, or after `timeout` seconds."""
    for _notification in conn.notifies(timeout=timeout, stop_after=1):
        pass


def unpublished(conn: Connection, limit: int) -> list[PendingEvent]:
    """The oldest events not yet confirmed by the broker, in the order they were written."""
    return [PendingEvent(*row) for row in conn.execute(SELECT_UNPUBLISHED, {"limit": limit})]


def mark_published(conn: Connection, events: list[PendingEvent]) -> None:
    if events:
        conn.execute(MARK_PUBLISHED, {"ids": [event.id for event in events]})
