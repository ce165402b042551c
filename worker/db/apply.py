"""Apply commands to PostgreSQL: one transaction per batch, one outcome per command.

For each command, in arrival order: lock the order, decide (worker.domain), claim
the command id in the inbox together with its outcome, then write the effects:
the order row, one history row, and one outbox event. A command id that is
already in the inbox changes nothing; its delivery is only counted.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from psycopg import Cursor
from psycopg.types.json import Jsonb

from contracts import (
    EVENTS_BY_TYPE,
    ChangeOrderStatus,
    Command,
    CommandOutcome,
    CreateOrder,
    Event,
    OrderCreated,
    OrderSnapshot,
    OrderStatusChanged,
    OrderStatusChangeRejected,
    RejectionReason,
)
from worker.db.connection import Connection
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
from worker.domain.workflow import Workflow

OUTBOX_CHANNEL = "order_status_outbox"
"""PostgreSQL NOTIFY channel that wakes the relay when events were written."""

DEFAULT_CREATION_ACTOR = "system"

SELECT_ORDER_FOR_UPDATE = """
SELECT status, version, amount, currency, customer_id, customer_type, order_date
FROM orders WHERE order_number = %(order_number)s
FOR UPDATE
"""

SELECT_REGISTRATION = """
SELECT creation_fingerprint FROM orders WHERE order_number = %(order_number)s
"""

CLAIM_COMMAND = """
INSERT INTO processed_commands (
    command_id, command_type, order_number, outcome, reason, detail,
    fingerprint, correlation_id, message_id, processed_at, last_seen_at
) VALUES (
    %(command_id)s, %(command_type)s, %(order_number)s, %(outcome)s, %(reason)s, %(detail)s,
    %(fingerprint)s, %(correlation_id)s, %(message_id)s, %(now)s, %(now)s
)
ON CONFLICT (command_id) DO NOTHING
RETURNING command_id
"""

RECORD_REDELIVERY = """
UPDATE processed_commands
SET deliveries = deliveries + 1, last_seen_at = %(now)s
WHERE command_id = %(command_id)s
RETURNING outcome, reason, detail, fingerprint
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

INSERT_HISTORY = """
INSERT INTO order_status_history (
    order_number, from_status, to_status, version, actor, reason, changed_at,
    command_id, correlation_id
) VALUES (
    %(order_number)s, %(from_status)s, %(to_status)s, %(version)s, %(actor)s, %(reason)s,
    %(now)s, %(command_id)s, %(correlation_id)s
)
"""

INSERT_OUTBOX = """
INSERT INTO outbox (
    event_id, routing_key, message_type, payload, order_number, command_id, correlation_id
) VALUES (
    %(event_id)s, %(routing_key)s, %(message_type)s, %(payload)s, %(order_number)s,
    %(command_id)s, %(correlation_id)s
)
"""

NOTIFY_OUTBOX = "SELECT pg_notify(%(channel)s, '')"


@dataclass(frozen=True)
class ApplyResult:
    """The outcome of one command, as recorded in the inbox."""

    command_id: UUID
    order_number: str
    outcome: CommandOutcome
    reason: RejectionReason | None = None
    detail: str | None = None
    redelivered: bool = False
    """The command id had been processed before; nothing changed this time."""
    content_conflict: bool = False
    """The command id had been processed before with different content."""


class ConcurrentRegistration(Exception):
    """Another transaction registered the same order number first; apply again."""


def apply_commands(
    conn: Connection, workflow: Workflow, batch: Sequence[IncomingCommand]
) -> list[ApplyResult]:
    """Apply `batch` in arrival order in one transaction; return one result per command."""
    with conn.transaction(), conn.cursor() as cur:
        results = []
        events_written = 0
        for incoming in batch:
            result, events = _apply_one(cur, workflow, incoming, datetime.now(UTC))
            results.append(result)
            events_written += events
        if events_written:
            cur.execute(NOTIFY_OUTBOX, {"channel": OUTBOX_CHANNEL})
    return results


def _apply_one(
    cur: Cursor[Any], workflow: Workflow, incoming: IncomingCommand, now: datetime
) -> tuple[ApplyResult, int]:
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
    snapshot = _snapshot(*row[2:7]) if row else None
    decision = decide_status_change(state, command, workflow)
    result = _result_for(command, decision)
    if not _claim(cur, incoming, result, fingerprint(command), now):
        return _redelivery(cur, incoming, fingerprint(command), now), 0
    match decision:
        case Move():
            if snapshot is None:
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
            _append_history(
                cur,
                incoming,
                from_status=decision.from_status,
                to_status=decision.to_status,
                version=decision.new_version,
                actor=command.actor,
                reason=command.reason,
                now=now,
            )
            _enqueue(
                cur,
                OrderStatusChanged(
                    event_id=uuid4(),
                    command_id=command.command_id,
                    correlation_id=incoming.correlation,
                    order_number=command.order_number,
                    from_status=decision.from_status,
                    to_status=decision.to_status,
                    version=decision.new_version,
                    actor=command.actor,
                    reason=command.reason,
                    changed_at=now,
                    order=snapshot,
                ),
                incoming,
            )
            return result, 1
        case Rejection():
            _enqueue(cur, _rejected_event(command, decision, incoming, now), incoming)
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
    if not _claim(cur, incoming, result, fingerprint(command), now):
        return _redelivery(cur, incoming, fingerprint(command), now), 0
    match decision:
        case Register():
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
                    "status": decision.status,
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
            actor = command.actor or DEFAULT_CREATION_ACTOR
            _append_history(
                cur,
                incoming,
                from_status=None,
                to_status=decision.status,
                version=1,
                actor=actor,
                reason=None,
                now=now,
            )
            _enqueue(
                cur,
                OrderCreated(
                    event_id=uuid4(),
                    command_id=command.command_id,
                    correlation_id=incoming.correlation,
                    order_number=command.order_number,
                    status=decision.status,
                    version=1,
                    customer=command.customer,
                    amount=command.amount,
                    currency=command.currency,
                    order_date=command.order_date,
                    lines=command.lines,
                    actor=actor,
                    created_at=now,
                ),
                incoming,
            )
            return result, 1
        case Rejection():
            _enqueue(cur, _rejected_event(command, decision, incoming, now), incoming)
            return result, 1
        case AlreadyRegistered():
            return result, 0


def _result_for(
    command: Command, decision: Move | Unchanged | Rejection | Register | AlreadyRegistered
) -> ApplyResult:
    reason: RejectionReason | None = None
    detail: str | None = None
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


def _claim(
    cur: Cursor[Any],
    incoming: IncomingCommand,
    result: ApplyResult,
    command_fingerprint: str,
    now: datetime,
) -> bool:
    """Record the command and its outcome; False if its id was already recorded."""
    claimed = cur.execute(
        CLAIM_COMMAND,
        {
            "command_id": result.command_id,
            "command_type": type(incoming.command).__name__,
            "order_number": result.order_number,
            "outcome": result.outcome.value,
            "reason": result.reason.value if result.reason else None,
            "detail": result.detail,
            "fingerprint": command_fingerprint,
            "correlation_id": incoming.correlation,
            "message_id": incoming.message_id,
            "now": now,
        },
    ).fetchone()
    return claimed is not None


def _redelivery(
    cur: Cursor[Any], incoming: IncomingCommand, command_fingerprint: str, now: datetime
) -> ApplyResult:
    command = incoming.command
    row = cur.execute(RECORD_REDELIVERY, {"command_id": command.command_id, "now": now}).fetchone()
    if row is None:
        raise RuntimeError(f"command {command.command_id} vanished from the inbox")
    outcome, reason, detail, recorded_fingerprint = row
    return ApplyResult(
        command_id=command.command_id,
        order_number=command.order_number,
        outcome=CommandOutcome(outcome),
        reason=RejectionReason(reason) if reason else None,
        detail=detail,
        redelivered=True,
        content_conflict=recorded_fingerprint != command_fingerprint,
    )


def _append_history(
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


def _enqueue(cur: Cursor[Any], event: Event, incoming: IncomingCommand) -> None:
    """Write `event` to the outbox; the relay publishes it after this transaction commits."""
    kind = EVENTS_BY_TYPE[type(event).__name__]
    cur.execute(
        INSERT_OUTBOX,
        {
            "event_id": event.event_id,
            "routing_key": kind.routing_key,
            "message_type": kind.type_name,
            "payload": Jsonb(event.model_dump(mode="json")),
            "order_number": incoming.command.order_number,
            "command_id": incoming.command.command_id,
            "correlation_id": incoming.correlation,
        },
    )


def _rejected_event(
    command: Command, rejection: Rejection, incoming: IncomingCommand, now: datetime
) -> OrderStatusChangeRejected:
    return OrderStatusChangeRejected(
        event_id=uuid4(),
        command_id=command.command_id,
        command_type="CreateOrder" if isinstance(command, CreateOrder) else "ChangeOrderStatus",
        correlation_id=incoming.correlation,
        order_number=command.order_number,
        reason=rejection.reason,
        detail=rejection.detail,
        actor=command.actor,
        rejected_at=now,
    )


def _snapshot(
    amount: Decimal, currency: str, customer_id: str, customer_type: str, order_date: date
) -> OrderSnapshot:
    return OrderSnapshot(
        amount=amount,
        currency=currency,
        customer_id=customer_id,
        customer_type=customer_type,
        order_date=order_date,
    )
