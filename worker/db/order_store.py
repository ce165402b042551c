"""PostgreSQL behind the order use cases (`worker.services.orders.OrderStore`).

The list is paged by keyset: each page starts after the sort value and order
number of the last order of the page before (ties by order number, ascending),
so a page is an index range and not an offset to skip. There is one statement
per sort and direction, built once here from a fixed set of columns.
"""

from collections.abc import Sequence
from typing import Any

from psycopg.rows import dict_row

from worker.db.connection import Connection
from worker.db.errors import translated
from worker.db.reads import ORDER_COLUMNS, get_order, order_summary
from worker.db.rules_reads import firings_for_order, list_tasks
from worker.db.workflow_store import load_workflow
from worker.domain.workflow import Workflow
from worker.services.orders import OrderFilter, OrderListQuery, OrderSort, Position
from worker.views import CommandRecord, OrderDetail, OrderSummary, RuleFiringView, TaskView

ORDER_FILTERS = """
(%(status)s::text IS NULL OR status = %(status)s)
AND (%(customer)s::text IS NULL
     OR lower(customer_name) LIKE %(customer)s ESCAPE '\\'
     OR customer_id = %(customer_exact)s)
AND (%(number)s::text IS NULL OR lower(order_number) LIKE %(number)s ESCAPE '\\')
AND (%(customer_type)s::text IS NULL OR customer_type = %(customer_type)s)
AND (%(since)s::date IS NULL OR order_date >= %(since)s)
AND (%(until)s::date IS NULL OR order_date <= %(until)s)
"""

COUNT_ORDERS = f"SELECT count(*) FROM orders WHERE {ORDER_FILTERS}"

SORT_COLUMNS = {
    OrderSort.NUMBER: "order_number",
    OrderSort.DATE: "order_date",
    OrderSort.CREATED: "created_at",
    OrderSort.UPDATED: "updated_at",
    OrderSort.AMOUNT: "amount",
}


def _list_statement(column: str, descending: bool) -> str:
    direction, beyond = ("DESC", "<") if descending else ("ASC", ">")
    return f"""
SELECT {ORDER_COLUMNS}
FROM orders
WHERE {ORDER_FILTERS}
  AND (%(after_number)s::text IS NULL
       OR {column} {beyond} %(after_value)s
       OR ({column} = %(after_value)s AND order_number > %(after_number)s))
ORDER BY {column} {direction}, order_number
LIMIT %(limit)s
"""


LIST_ORDERS = {
    (sort, descending): _list_statement(column, descending)
    for sort, column in SORT_COLUMNS.items()
    for descending in (False, True)
}

COMMANDS_FOR_ORDER = """
SELECT command_id, command_type, order_number, outcome, reason, detail, correlation_id,
       processed_at, deliveries, last_seen_at
FROM processed_commands
WHERE order_number = %(order_number)s
ORDER BY processed_at, command_id
"""


def _contains(text: str | None) -> str | None:
    """A case-insensitive LIKE pattern matching `text` anywhere, wildcards escaped."""
    if text is None:
        return None
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def filter_parameters(order_filter: OrderFilter) -> dict[str, Any]:
    """The named parameters of ORDER_FILTERS."""
    return {
        "status": order_filter.status,
        "customer": _contains(order_filter.customer),
        "customer_exact": order_filter.customer,
        "number": _contains(order_filter.number),
        "customer_type": order_filter.customer_type,
        "since": order_filter.since,
        "until": order_filter.until,
    }


class PostgresOrders:
    """The order reads of one connection (autocommit, so each read sees the latest commits)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def workflow(self) -> Workflow:
        with translated():
            return load_workflow(self._conn)

    def count_orders(self, order_filter: OrderFilter) -> int:
        with translated():
            row = self._conn.execute(COUNT_ORDERS, filter_parameters(order_filter)).fetchone()
            return int(row[0]) if row else 0

    def list_orders(
        self, query: OrderListQuery, after: Position | None, limit: int
    ) -> list[OrderSummary]:
        with translated():
            params = {
                **filter_parameters(query.filter),
                "after_value": None if after is None else after.value,
                "after_number": None if after is None else after.order_number,
                "limit": limit,
            }
            with self._conn.cursor(row_factory=dict_row) as cur:
                rows = cur.execute(LIST_ORDERS[(query.sort, query.descending)], params).fetchall()
            return [OrderSummary(**order_summary(row)) for row in rows]

    def order(self, order_number: str) -> OrderDetail | None:
        with translated():
            return get_order(self._conn, order_number)

    def rule_firings(self, order_number: str) -> list[RuleFiringView]:
        with translated():
            return firings_for_order(self._conn, order_number)

    def tasks(self, order_number: str) -> list[TaskView]:
        with translated():
            return list_tasks(self._conn, order_number)

    def commands(self, order_number: str) -> Sequence[CommandRecord]:
        with translated():
            with self._conn.cursor(row_factory=dict_row) as cur:
                rows = cur.execute(COMMANDS_FOR_ORDER, {"order_number": order_number}).fetchall()
            return [CommandRecord(**row) for row in rows]
