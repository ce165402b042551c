"""Apply commands to PostgreSQL: one transaction per batch, one outcome per command.

For each command, in arrival order: lock the order, decide (worker.domain), claim
the command id in the inbox together with its outcome, then write the effects:
the order row, one history row, and one outbox event. A command id that is
already in the inbox changes nothing; its delivery is only counted.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg import Cursor

from contracts import ChangeOrderStatus, Command, CommandOutcome, CreateOrder, OrderSnapshot
from worker.db import inbox, outbox
from worker.db.connection import Connection
from worker.db.errors import ConcurrentRegistration
from worker.db.history import append_history
from worker.domain import events
from worker.domain.decisions import (
    AlreadyRegistered,
    Move,
    OrderState,
    Register,
    Rejection,
    Unchanged,
    decide_creation,
    decide_status_change,
)
from worker.domain.fingerprints import creation_fingerprint, fingerprint
from worker.domain.incoming import IncomingCommand
from worker.domain.outcomes import ApplyResult
from worker.domain.workflow import Workflow

DEFAULT_CREATION_ACTOR = "system"

SELECT_ORDER_FOR_UPDATE = """
SELECT status, version, amount, currency, customer_id, customer_type, order_date
FROM orders WHERE order_number = %(order_number)s
FOR UPDATE
"""

SELECT_REGISTRATION = """
SELECT creation_fingerprint FROM orders WHERE order_number = %(order_number)s
FOR UPDATE
"""

UPDATE_ORDER_STATUS = """
UPDATE orders SET status = %(to_status)s, version = %(version)s, updated_at = %(now)s
WHERE order_number = %(order_number)s
"""

INSERT_ORDER = """
INSERT INTO orders (
    order_number, customer_id, customer_name, customer_type, amount, currency, order_date,
    status, version, creation_fingerprint, created_at, updated_at
) VALUES (
    %(order_number)s, %(customer_id)s, %(customer_name)s, %(customer_type)s, %(amount)s,
    %(currency)s, %(order_date)s, %(status)s, 1, %(fingerprint)s, %(now)s, %(now)s
)
ON CONFLICT (order_number) DO NOTHING
RETURNING order_number
"""

INSERT_ORDER_LINE = """
INSERT INTO order_lines (order_number, line_no, sku, name, quantity, unit_price)
VALUES (%(order_number)s, %(line_no)s, %(sku)s, %(name)s, %(quantity)s, %(unit_price)s)
"""


def apply_commands(
    conn: Connection, workflow: Workflow, batch: Sequence[IncomingCommand]
) -> list[ApplyResult]:
    """Apply `batch` in arrival order in one transaction; return one result per command."""
    with conn.transaction(), conn.cursor() as cur:
        results = []
        events_written = 0
        for incoming in batch:
            result, written = _apply_one(cur, workflow, incoming, datetime.now(UTC))
            results.append(result)
            events_written += written
        if events_written:
            outbox.notify_relay(cur)
    return results


def _apply_one(
    cur: Cursor[Any], workflow: Workflow, incoming: IncomingCommand, now: datetime
) -> tuple[ApplyResult, int]:
    """Apply one command; return its result and how many events it wrote."""
    command = incoming.command
    if isinstance(command, CreateOrder):
        return _register_order(cur, workflow, incoming, command, now)
    return _change_status(cur, workflow, incoming, command, now)


def _change_status(
    cur: Cursor[Any],
    workflow: Workflow,
    incoming: IncomingCommand,
    command: ChangeOrderStatus,
    now: datetime,
) -> tuple[ApplyResult, int]:
    row = cur.execute(SELECT_ORDER_FOR_UPDATE, {"order_number": command.order_number}).fetchone()
    state = OrderState(status=row[0], version=row[1]) if row else None
    decision = decide_status_change(state, command, workflow)
    result = _result_for(command, decision)
    if not inbox.claim(cur, incoming, result, fingerprint(command), now):
        return inbox.record_redelivery(cur, incoming, fingerprint(command), now), 0
    match decision:
        case Move():
            if row is None:
                raise RuntimeError("a move was decided for an order that does not exist")
            cur.execute(
                UPDATE_ORDER_STATUS,
                {
                    "order_number": command.order_number,
                    "to_status": decision.to_status,
                    "version": decision.new_version,
                    "now": now,
                },
            )
            append_history(
                cur,
                incoming,
                from_status=decision.from_status,
                to_status=decision.to_status,
                version=decision.new_version,
                actor=command.actor,
                reason=command.reason,
                now=now,
            )
            amount, currency, customer_id, customer_type, order_date = row[2:7]
            snapshot = OrderSnapshot(
                amount=amount,
                currency=currency,
                customer_id=customer_id,
                customer_type=customer_type,
                order_date=order_date,
            )
            outbox.enqueue(
                cur, events.status_changed(incoming, command, decision, snapshot, now), incoming
            )
            return result, 1
        case Rejection():
            outbox.enqueue(cur, events.command_rejected(incoming, command, decision, now), incoming)
            return result, 1
        case Unchanged():
            return result, 0


def _register_order(
    cur: Cursor[Any],
    workflow: Workflow,
    incoming: IncomingCommand,
    command: CreateOrder,
    now: datetime,
) -> tuple[ApplyResult, int]:
    content = creation_fingerprint(command)
    row = cur.execute(SELECT_REGISTRATION, {"order_number": command.order_number}).fetchone()
    decision = decide_creation(command.order_number, content, row[0] if row else None, workflow)
    result = _result_for(command, decision)
    if not inbox.claim(cur, incoming, result, fingerprint(command), now):
        return inbox.record_redelivery(cur, incoming, fingerprint(command), now), 0
    match decision:
        case Register():
            _insert_order(cur, command, decision.status, content, now)
            actor = command.actor or DEFAULT_CREATION_ACTOR
            append_history(
                cur,
                incoming,
                from_status=None,
                to_status=decision.status,
                version=1,
                actor=actor,
                reason=None,
                now=now,
            )
            outbox.enqueue(
                cur, events.order_created(incoming, command, decision.status, actor, now), incoming
            )
            return result, 1
        case Rejection():
            outbox.enqueue(cur, events.command_rejected(incoming, command, decision, now), incoming)
            return result, 1
        case AlreadyRegistered():
            return result, 0


def _insert_order(
    cur: Cursor[Any], command: CreateOrder, status: str, content: str, now: datetime
) -> None:
    inserted = cur.execute(
        INSERT_ORDER,
        {
            "order_number": command.order_number,
            "customer_id": command.customer.id,
            "customer_name": command.customer.name,
            "customer_type": command.customer.type,
            "amount": command.amount,
            "currency": command.currency,
            "order_date": command.order_date,
            "status": status,
            "fingerprint": content,
            "now": now,
        },
    ).fetchone()
    if inserted is None:
        raise ConcurrentRegistration(command.order_number)
    if command.lines:
        cur.executemany(
            INSERT_ORDER_LINE,
            [
                {"order_number": command.order_number, "line_no": n, **line.model_dump()}
                for n, line in enumerate(command.lines, start=1)
            ],
        )


def _result_for(
    command: Command, decision: Move | Unchanged | Rejection | Register | AlreadyRegistered
) -> ApplyResult:
    reason = None
    detail = None
    match decision:
        case Move() | Register():
            outcome = CommandOutcome.APPLIED
        case Unchanged():
            outcome, detail = CommandOutcome.UNCHANGED, f"the order is already {decision.status}"
        case AlreadyRegistered():
            outcome, detail = CommandOutcome.DUPLICATE, decision.detail
        case Rejection():
            outcome, reason, detail = CommandOutcome.REJECTED, decision.reason, decision.detail
    return ApplyResult(
        command_id=command.command_id,
        order_number=command.order_number,
        outcome=outcome,
        reason=reason,
        detail=detail,
    )
