"""Queries behind the CLI: order lists and details, command outcomes."""

import time
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row

from contracts import Customer, OrderLine
from worker.db.connection import Connection
from worker.views import CommandRecord, HistoryEntry, OrderDetail, OrderSummary

ORDER_COLUMNS = """
order_number, status, version, amount, currency, customer_id, customer_name, customer_type,
order_date, created_at, updated_at
"""

LIST_ORDERS = f"""
SELECT {ORDER_COLUMNS}
FROM orders
WHERE (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(customer)s::text IS NULL
       OR lower(customer_name) LIKE %(customer)s ESCAPE '\\'
       OR customer_id = %(customer_exact)s)
  AND (%(number)s::text IS NULL OR lower(order_number) LIKE %(number)s ESCAPE '\\')
  AND (%(since)s::date IS NULL OR order_date >= %(since)s)
  AND (%(until)s::date IS NULL OR order_date <= %(until)s)
ORDER BY order_date DESC, order_number
LIMIT %(limit)s
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


@dataclass(frozen=True)
class OrderFilter:
    """The filters of a CRM order list; None means "any"."""

    status: str | None = None
    customer: str | None = None
    number: str | None = None
    since: date | None = None
    until: date | None = None
    limit: int = 50


def _contains(text: str | None) -> str | None:
    """A case-insensitive LIKE pattern matching `text` anywhere, wildcards escaped."""
    if text is None:
        return None
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    fields = dict(row)
    fields["customer"] = Customer(
        id=fields.pop("customer_id"),
        name=fields.pop("customer_name"),
        type=fields.pop("customer_type"),
    )
    return fields


def list_orders(conn: Connection, order_filter: OrderFilter) -> list[OrderSummary]:
    """Orders matching every given filter, newest order date first."""
    params = {
        "status": order_filter.status,
        "customer": _contains(order_filter.customer),
        "customer_exact": order_filter.customer,
        "number": _contains(order_filter.number),
        "since": order_filter.since,
        "until": order_filter.until,
        "limit": order_filter.limit,
    }
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(LIST_ORDERS, params).fetchall()
    return [OrderSummary(**_summary(row)) for row in rows]


def get_order(conn: Connection, order_number: str) -> OrderDetail | None:
    """The order with its lines and history, or None if there is no such order."""
    key = {"order_number": order_number}
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(GET_ORDER, key).fetchone()
        if row is None:
            return None
        lines = [OrderLine(**line) for line in cur.execute(GET_LINES, key).fetchall()]
        history = [HistoryEntry(**entry) for entry in cur.execute(GET_HISTORY, key).fetchall()]
    return OrderDetail(**_summary(row), lines=tuple(lines), history=tuple(history))


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
