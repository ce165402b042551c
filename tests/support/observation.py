"""Reading what a drained run left behind, for the history checker."""

from collections import Counter
from collections.abc import Sequence
from typing import Any

import psycopg

from tests.support.history import HistoryRow, Observed, OutboxRow

OUTCOMES = "SELECT command_id::text, outcome FROM processed_commands"
DEAD_LETTERED = (
    "SELECT message_id, count(*) FROM dead_letters WHERE message_id IS NOT NULL GROUP BY message_id"
)
HISTORY = "SELECT order_number, version, to_status, command_id::text FROM order_status_history"
OUTBOX = (
    "SELECT event_id::text, command_id::text, message_type, published_at IS NOT NULL FROM outbox"
)
ORDERS = "SELECT order_number, status, version FROM orders"


def observe(database_url: str, received_event_ids: Sequence[str]) -> Observed:
    """Read the inbox, the dead-letter store, history, outbox and orders of a run."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        return Observed(
            outcomes=dict(_rows(connection, OUTCOMES)),
            dead_lettered=Counter({row[0]: row[1] for row in _rows(connection, DEAD_LETTERED)}),
            history=[HistoryRow(*row) for row in _rows(connection, HISTORY)],
            outbox=[OutboxRow(*row) for row in _rows(connection, OUTBOX)],
            orders={
                number: (status, version) for number, status, version in _rows(connection, ORDERS)
            },
            received_event_ids=list(received_event_ids),
        )


def _rows(connection: psycopg.Connection[Any], query: str) -> list[tuple[Any, ...]]:
    return list(connection.execute(query))
