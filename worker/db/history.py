"""The append-only audit trail: one row per status change, registration included."""

from datetime import datetime
from typing import Any

from psycopg import Cursor

from worker.domain.incoming import IncomingCommand

INSERT_HISTORY = """
INSERT INTO order_status_history (
    order_number, from_status, to_status, version, actor, reason, changed_at,
    command_id, correlation_id
) VALUES (
    %(order_number)s, %(from_status)s, %(to_status)s, %(version)s, %(actor)s, %(reason)s,
    %(now)s, %(command_id)s, %(correlation_id)s
)
"""


def append_history(
    cur: Cursor[Any],
    incoming: IncomingCommand,
    *,
    from_status: str | None,
    to_status: str,
    version: int,
    actor: str,
    reason: str | None,
    now: datetime,
) -> None:
    """Record who moved the order from where to where, when, why and by which command."""
    cur.execute(
        INSERT_HISTORY,
        {
            "order_number": incoming.command.order_number,
            "from_status": from_status,
            "to_status": to_status,
            "version": version,
            "actor": actor,
            "reason": reason,
            "now": now,
            "command_id": incoming.command.command_id,
            "correlation_id": incoming.correlation,
        },
    )
