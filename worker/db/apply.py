"""Apply a batch of commands to PostgreSQL: one transaction, three statements.

Read what the batch needs (its orders, locked in a fixed order, and what the
inbox knows of its command ids), decide every command in memory in
arrival order (worker.domain.batch), then write the whole plan in one
set-based statement (worker.db.batch_write): inbox rows with their outcomes,
repeat deliveries, new orders and their lines, each moved order's final status,
the history rows and the outbox events. Nothing grows with the batch but the
arrays.

Two transactions racing for the same command id or order number (possible only
if two workers consume at once) are caught by the unique keys: the later one
raises a retryable error and, tried again, sees the other's work.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg import Cursor

from contracts import OrderSnapshot
from worker.db import inbox
from worker.db.batch_write import write_batch
from worker.db.connection import Connection, Database
from worker.db.workflow_store import WorkflowCache
from worker.domain.batch import KnownOrder, plan_batch
from worker.domain.incoming import IncomingCommand
from worker.domain.outcomes import ApplyResult
from worker.domain.workflow import Workflow
from worker.errors import Refused

LOCK_ORDERS = """
SELECT order_number, status, version, amount, currency, customer_id, customer_type, order_date,
       creation_fingerprint
FROM unnest(%(numbers)b::text[]) AS wanted (order_number)
JOIN orders USING (order_number)
ORDER BY order_number
FOR UPDATE OF orders
"""


def apply_commands(
    conn: Connection, workflow: Workflow, batch: Sequence[IncomingCommand]
) -> list[ApplyResult]:
    """Apply `batch` in arrival order in one transaction; return one result per command."""
    now = datetime.now(UTC)
    numbers = sorted({incoming.command.order_number for incoming in batch})
    with conn.transaction(), conn.cursor() as cur:
        orders = _known_orders(cur.execute(LOCK_ORDERS, {"numbers": numbers}))
        recorded = inbox.recorded(cur, [incoming.command.command_id for incoming in batch])
        plan = plan_batch(batch, orders, recorded, workflow, now)
        write_batch(cur, plan, now)
    return plan.results


class DatabaseCommandStore:
    """Applies commands to PostgreSQL with the workflow as last read."""

    def __init__(self, database: Database, workflows: WorkflowCache) -> None:
        self._database = database
        self._workflows = workflows

    def check(self) -> None:
        with self._database.use() as connection:
            self._workflows.current(connection)

    def apply(self, commands: Sequence[IncomingCommand]) -> Sequence[ApplyResult]:
        try:
            return self._apply(commands)
        except Refused:
            # A status retired since the workflow was read fails a foreign key; decided
            # again with the current workflow, it becomes a business rejection instead.
            self._workflows.expire()
            return self._apply(commands)

    def _apply(self, commands: Sequence[IncomingCommand]) -> Sequence[ApplyResult]:
        with self._database.use() as connection:
            return apply_commands(connection, self._workflows.current(connection), commands)

    def close(self) -> None:
        self._database.close()


def _known_orders(cur: Cursor[Any]) -> dict[str, KnownOrder]:
    """The batch's orders as locked, by order number."""
    orders = {}
    for row in cur:
        number, status, version, amount, currency, customer_id, customer_type, order_date = row[:8]
        orders[number] = KnownOrder(
            status=status,
            version=version,
            snapshot=OrderSnapshot(
                amount=amount,
                currency=currency,
                customer_id=customer_id,
                customer_type=customer_type,
                order_date=order_date,
            ),
            creation_fingerprint=row[8],
        )
    return orders
