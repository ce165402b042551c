"""Reads of an order with its lines and history, and of command outcomes in the inbox."""

import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row

from contracts import Customer, OrderLine
from worker.db.connection import Connection
from worker.views import CommandRecord, HistoryEntry, OrderDetail

ORDER_COLUMNS = """
order_number, status, version, amount, currency, customer_id, customer_name, customer_type,
order_date, created_at, updated_at
"""

GET_ORDER = f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_number = %(order_number)s"

GET_LINES = """
SELECT sku, name, quantity, unit_price FROM order_lines
WHERE order_number = %(order_number)s ORDER BY line_no
"""

GET_HISTORY = """
SELECT from_status, to_status, version, actor, reason, changed_at, command_id, correlation_id
FROM order_status_history
WHERE order_number = %(order_number)s
ORDER BY version
"""

GET_COMMAND = """
SELECT command_id, command_type, order_number, outcome, reason, detail, correlation_id,
       processed_at, deliveries, last_seen_at
FROM processed_commands WHERE command_id = %(command_id)s
"""


SEEN_COMMAND = """
SELECT fingerprint, deliveries FROM processed_commands WHERE command_id = %(command_id)s
"""


@dataclass(frozen=True)
class SeenCommand:
    """What the inbox holds about a command id, for checking a repeat before sending it."""

    fingerprint: str
    deliveries: int


def order_summary(row: dict[str, Any]) -> dict[str, Any]:
    """The fields of an OrderSummary from an orders row (the customer as one object)."""
    fields = dict(row)
    fields["customer"] = Customer(
        id=fields.pop("customer_id"),
        name=fields.pop("customer_name"),
        type=fields.pop("customer_type"),
    )
    return fields


def get_order(conn: Connection, order_number: str) -> OrderDetail | None:
    """The order with its lines and history, or None if there is no such order."""
    key = {"order_number": order_number}
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(GET_ORDER, key).fetchone()
        if row is None:
            return None
        lines = [OrderLine(**line) for line in cur.execute(GET_LINES, key).fetchall()]
        history = [HistoryEntry(**entry) for entry in cur.execute(GET_HISTORY, key).fetchall()]
    return OrderDetail(**order_summary(row), lines=tuple(lines), history=tuple(history))


def get_command(conn: Connection, command_id: UUID) -> CommandRecord | None:
    """The recorded outcome of a command, or None if it has not been processed."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(GET_COMMAND, {"command_id": command_id}).fetchone()
    return CommandRecord(**row) if row else None


def seen_command(conn: Connection, command_id: UUID) -> SeenCommand | None:
    """The fingerprint and delivery count of a processed command, or None."""
    row = conn.execute(SEEN_COMMAND, {"command_id": command_id}).fetchone()
    return SeenCommand(*row) if row else None


def wait_for_outcome(
    conn: Connection,
    command_id: UUID,
    timeout: float,
    *,
    min_deliveries: int = 1,
    poll_seconds: float = 0.05,
) -> CommandRecord | None:
    """Poll the inbox until the command has an outcome; None if `timeout` passes first.

    With `min_deliveries`, wait until the command has been seen that many times.
    """
    deadline = time.monotonic() + timeout
    while True:
        record = get_command(conn, command_id)
        if record is not None and record.deliveries >= min_deliveries:
            return record
        if time.monotonic() >= deadline:
            return None
        time.sleep(poll_seconds)
