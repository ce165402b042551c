"""The append-only audit trail: one row per status change, registration included."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import Cursor

from worker.domain.batch import HistoryEntry

INSERT_HISTORY = """
INSERT INTO order_status_history (
    order_number, from_status, to_status, version, actor, reason, changed_at,
    command_id, correlation_id
)
SELECT order_number, from_status, to_status, version, actor, reason, %(now)s,
       command_id, correlation_id
FROM unnest(
    %(order_number)b::text[], %(from_status)b::text[], %(to_status)b::text[],
    %(version)b::integer[], %(actor)b::text[], %(reason)b::text[], %(command_id)b::uuid[],
    %(correlation_id)b::text[]
) WITH ORDINALITY AS entry (
    order_number, from_status, to_status, version, actor, reason, command_id, correlation_id,
    position
)
ORDER BY position
"""


def append_all(cur: Cursor[Any], entries: Sequence[HistoryEntry], now: datetime) -> None:
    """Record who moved each order from where to where, when, why and by which command."""
    if not entries:
        return
    cur.execute(
        INSERT_HISTORY,
        {
            "order_number": [e.incoming.command.order_number for e in entries],
            "from_status": [e.from_status for e in entries],
            "to_status": [e.to_status for e in entries],
            "version": [e.version for e in entries],
            "actor": [e.actor for e in entries],
            "reason": [e.reason for e in entries],
            "command_id": [e.incoming.command.command_id for e in entries],
            "correlation_id": [e.incoming.correlation for e in entries],
            "now": now,
        },
    )
