"""The reads behind `order-status verify`: rows that may break an invariant, in one snapshot.

Each query narrows the tables down to the rows worth judging, so a healthy
database returns nothing; `worker.verification` decides what each row breaks.
All of them run in one read-only repeatable-read transaction, so the checks
see the same moment even while the workers keep writing.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg

from worker.db.connection import Connection

CHANGE_EVENT_TYPES = ("OrderCreated", "OrderStatusChanged")
"""The outbox rows that stand for a history row: exactly one each."""

ORDERS_AGAINST_HISTORY = """
    SELECT o.order_number, o.status, o.version,
           coalesce(h.versions, '{}'::integer[]) AS versions, h.last_status
    FROM orders o
    LEFT JOIN LATERAL (
        SELECT array_agg(version ORDER BY version) AS versions,
               (array_agg(to_status ORDER BY version DESC))[1] AS last_status
        FROM order_status_history
        WHERE order_number = o.order_number
    ) h ON true
    WHERE h.versions IS NULL
       OR h.versions[1] <> 1
       OR cardinality(h.versions) <> h.versions[cardinality(h.versions)]
       OR h.versions[cardinality(h.versions)] <> o.version
       OR h.last_status <> o.status
    ORDER BY o.order_number
"""

HISTORY_ROWS_WITHOUT_ONE_EVENT = """
    SELECT h.id, h.order_number, h.version, h.command_id::text,
           coalesce(array_agg(e.event_id::text ORDER BY e.id)
                    FILTER (WHERE e.id IS NOT NULL), '{}') AS event_ids
    FROM order_status_history h
    LEFT JOIN outbox e
           ON e.command_id = h.command_id
          AND e.order_number = h.order_number
          AND e.message_type = ANY(%(change_types)s)
    GROUP BY h.id
    HAVING count(e.id) <> 1
    ORDER BY h.id
"""

EVENTS_WITHOUT_HISTORY_ROW = """
    SELECT e.id, e.event_id::text, e.order_number, e.command_id::text, e.message_type
    FROM outbox e
    WHERE e.message_type = ANY(%(change_types)s)
      AND NOT EXISTS (
          SELECT 1 FROM order_status_history h
          WHERE h.command_id = e.command_id AND h.order_number = e.order_number
      )
    ORDER BY e.id
"""

STALE_UNPUBLISHED_EVENTS = """
    SELECT id, event_id::text, order_number, message_type,
           extract(epoch FROM statement_timestamp() - created_at)::float8 AS age_seconds
    FROM outbox
    WHERE published_at IS NULL
      AND created_at < statement_timestamp() - %(max_age)s
    ORDER BY id
"""

INBOX_AGAINST_HISTORY = """
    SELECT p.command_id::text, p.order_number, p.outcome, count(h.id)::integer AS history_rows
    FROM processed_commands p
    LEFT JOIN order_status_history h ON h.command_id = p.command_id
    GROUP BY p.command_id
    HAVING (p.outcome = 'applied' AND count(h.id) <> 1)
        OR (p.outcome <> 'applied' AND count(h.id) > 0)
    ORDER BY p.command_id
"""

HISTORY_WITHOUT_INBOX = """
    SELECT h.id, h.order_number, h.version, h.command_id::text
    FROM order_status_history h
    WHERE NOT EXISTS (SELECT 1 FROM processed_commands p WHERE p.command_id = h.command_id)
    ORDER BY h.id
"""


@dataclass(frozen=True)
class Suspects:
    """Rows each check picked out, as the database returned them."""

    orders: list[tuple[Any, ...]]
    history_without_one_event: list[tuple[Any, ...]]
    events_without_history: list[tuple[Any, ...]]
    stale_unpublished: list[tuple[Any, ...]]
    inbox_against_history: list[tuple[Any, ...]]
    history_without_inbox: list[tuple[Any, ...]]


def read_suspects(connection: Connection, max_outbox_age: timedelta) -> Suspects:
    """Run every check's query in one read-only snapshot (the connection must be idle)."""
    change_types = {"change_types": list(CHANGE_EVENT_TYPES)}
    connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    connection.read_only = True
    with connection.transaction():
        return Suspects(
            orders=connection.execute(ORDERS_AGAINST_HISTORY).fetchall(),
            history_without_one_event=connection.execute(
                HISTORY_ROWS_WITHOUT_ONE_EVENT, change_types
            ).fetchall(),
            events_without_history=connection.execute(
                EVENTS_WITHOUT_HISTORY_ROW, change_types
            ).fetchall(),
            stale_unpublished=connection.execute(
                STALE_UNPUBLISHED_EVENTS, {"max_age": max_outbox_age}
            ).fetchall(),
            inbox_against_history=connection.execute(INBOX_AGAINST_HISTORY).fetchall(),
            history_without_inbox=connection.execute(HISTORY_WITHOUT_INBOX).fetchall(),
        )
