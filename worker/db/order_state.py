"""The one read of an order's current state that every decision made outside a batch uses.

The rules worker's pre-check of a rule-caused move, a dead letter's replay dry
run and the HTTP API's fast pre-checks all judge a command against the order
as it is now, read without locks; the status worker, which locks the row,
remains the authority.
"""

from collections.abc import Sequence
from typing import Any

from psycopg import Cursor

from worker.db.connection import Connection
from worker.domain.decisions import OrderState

SELECT_ORDER_STATE = "SELECT status, version FROM orders WHERE order_number = %(order_number)s"
SELECT_ORDER_STATES = """
SELECT order_number, status, version FROM orders WHERE order_number = ANY(%(order_numbers)s)
"""
SELECT_REGISTRATION = (
    "SELECT creation_fingerprint FROM orders WHERE order_number = %(order_number)s"
)


def read_order_state(source: Connection | Cursor[Any], order_number: str) -> OrderState | None:
    """The order's status and version now, or None for an order never registered."""
    row = source.execute(SELECT_ORDER_STATE, {"order_number": order_number}).fetchone()
    return None if row is None else OrderState(status=row[0], version=row[1])


def read_order_states(conn: Connection, order_numbers: Sequence[str]) -> dict[str, OrderState]:
    """The status and version of each registered order among `order_numbers`."""
    rows = conn.execute(SELECT_ORDER_STATES, {"order_numbers": list(order_numbers)}).fetchall()
    return {str(number): OrderState(str(status), int(version)) for number, status, version in rows}


def read_registration(conn: Connection, order_number: str) -> str | None:
    """The content fingerprint the order was registered with, or None if it was not."""
    row = conn.execute(SELECT_REGISTRATION, {"order_number": order_number}).fetchone()
    return None if row is None else str(row[0])
