"""Apply a batch of commands to PostgreSQL: one transaction, a handful of statements.

Read what the batch needs (its orders, locked in a fixed order, and what the
inbox knows of its command ids), decide every command in memory in arrival
order (worker.domain.batch), then write the plan set-based: inbox rows with
their outcomes, repeat deliveries, new orders and their lines, each moved
order's final status, the history rows and the outbox events. The number of
statements does not grow with the batch.

Two transactions racing for the same command id or order number (possible only
if two workers consume at once) are caught by the unique keys: the later one
raises a retryable error and, tried again, sees the other's work.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg import Cursor

from contracts import OrderSnapshot
from worker.db import history, inbox, outbox
from worker.db.connection import Connection
from worker.db.errors import ConcurrentRegistration
from worker.domain.batch import BatchPlan, KnownOrder, Registration, plan_batch
from worker.domain.incoming import IncomingCommand
from worker.domain.outcomes import ApplyResult
from worker.domain.workflow import Workflow

LOCK_ORDERS = """
SELECT order_number, status, version, amount, currency, customer_id, customer_type, order_date,
       creation_fingerprint
FROM unnest(%(numbers)b::text[]) AS wanted (order_number)
JOIN orders USING (order_number)
ORDER BY order_number
FOR UPDATE OF orders
"""

INSERT_ORDERS = """
INSERT INTO orders (
    order_number, customer_id, customer_name, customer_type, amount, currency, order_date,
    status, version, creation_fingerprint, created_at, updated_at
)
SELECT order_number, customer_id, customer_name, customer_type, amount, currency, order_date,
       status, 1, creation_fingerprint, %(now)s, %(now)s
FROM unnest(
    %(order_number)b::text[], %(customer_id)b::text[], %(customer_name)b::text[],
    %(customer_type)b::text[], %(amount)b::numeric[], %(currency)b::text[],
    %(order_date)b::date[], %(status)b::text[], %(creation_fingerprint)b::text[]
) AS new (
    order_number, customer_id, customer_name, customer_type, amount, currency, order_date,
    status, creation_fingerprint
)
ON CONFLICT (order_number) DO NOTHING
RETURNING order_number
"""

INSERT_ORDER_LINES = """
INSERT INTO order_lines (order_number, line_no, sku, name, quantity, unit_price)
SELECT * FROM unnest(
    %(order_number)b::text[], %(line_no)b::integer[], %(sku)b::text[], %(name)b::text[],
    %(quantity)b::integer[], %(unit_price)b::numeric[]
)
"""

MOVE_ORDERS = """
UPDATE orders SET status = moved.status, version = moved.version, updated_at = %(now)s
FROM unnest(%(order_number)b::text[], %(status)b::text[], %(version)b::integer[])
    AS moved (order_number, status, version)
WHERE orders.order_number = moved.order_number
"""


def apply_commands(
    conn: Connection, workflow: Workflow, batch: Sequence[IncomingCommand]
) -> list[ApplyResult]:
    """Apply `batch` in arrival order in one transaction; return one result per command."""
    now = datetime.now(UTC)
    with conn.transaction(), conn.cursor() as orders, conn.cursor() as known:
        with conn.pipeline():
            orders.execute(
                LOCK_ORDERS,
                {"numbers": sorted({incoming.command.order_number for incoming in batch})},
            )
            inbox.send_recorded_query(known, [incoming.command.command_id for incoming in batch])
        plan = plan_batch(batch, _known_orders(orders), inbox.recorded(known), workflow, now)
        _write(conn, plan, now)
    return plan.results


def _write(conn: Connection, plan: BatchPlan, now: datetime) -> None:
    """Send every write in one go (pipeline mode), then check what the inserts returned."""
    with conn.cursor() as claims, conn.cursor() as registered, conn.cursor() as cur:
        with conn.pipeline():
            inbox.claim_all(claims, plan.claims, now)
            _register_orders(registered, plan.registrations, now)
            inbox.count_redeliveries(cur, plan.redeliveries, now)
            _insert_lines(cur, plan.registrations)
            _move_orders(cur, plan.moves, now)
            history.append_all(cur, plan.history, now)
            outbox.enqueue_all(cur, plan.events)
            if plan.events:
                outbox.notify_relay(cur)
        inbox.check_claimed(claims, plan.claims)
        _check_registered(registered, plan.registrations)


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


def _move_orders(cur: Cursor[Any], moves: dict[str, tuple[str, int]], now: datetime) -> None:
    if moves:
        numbers = list(moves)
        cur.execute(
            MOVE_ORDERS,
            {
                "order_number": numbers,
                "status": [moves[number][0] for number in numbers],
                "version": [moves[number][1] for number in numbers],
                "now": now,
            },
        )


def _register_orders(cur: Cursor[Any], registrations: list[Registration], now: datetime) -> None:
    if not registrations:
        return
    commands = [registration.command for registration in registrations]
    cur.execute(
        INSERT_ORDERS,
        {
            "order_number": [c.order_number for c in commands],
            "customer_id": [c.customer.id for c in commands],
            "customer_name": [c.customer.name for c in commands],
            "customer_type": [c.customer.type for c in commands],
            "amount": [c.amount for c in commands],
            "currency": [c.currency for c in commands],
            "order_date": [c.order_date for c in commands],
            "status": [r.status for r in registrations],
            "creation_fingerprint": [r.creation_fingerprint for r in registrations],
            "now": now,
        },
    )


def _check_registered(cur: Cursor[Any], registrations: list[Registration]) -> None:
    """Raise ConcurrentRegistration if another transaction registered one of these first."""
    if not registrations:
        return
    inserted = {number for (number,) in cur.fetchall()}
    taken = {r.command.order_number for r in registrations} - inserted
    if taken:
        raise ConcurrentRegistration(", ".join(sorted(taken)))


def _insert_lines(cur: Cursor[Any], registrations: list[Registration]) -> None:
    lines = [
        (r.command.order_number, n, line)
        for r in registrations
        for n, line in enumerate(r.command.lines, start=1)
    ]
    if lines:
        cur.execute(
            INSERT_ORDER_LINES,
            {
                "order_number": [number for number, _, _ in lines],
                "line_no": [n for _, n, _ in lines],
                "sku": [line.sku for _, _, line in lines],
                "name": [line.name for _, _, line in lines],
                "quantity": [line.quantity for _, _, line in lines],
                "unit_price": [line.unit_price for _, _, line in lines],
            },
        )
