"""Record what rules did, in the same transaction as its effects, and find stays to fire on.

For each verdict: claim (event id, rule) in `rule_firings`; only the first
claim writes anything else. Each action of a rule that fired becomes a
`rule_actions` row and, unless it was refused, an outbox row (the command,
notification or TaskCreated event) or a task. Each rule runs under a savepoint:
a rule whose effects the database refuses is recorded as failed, and the other
rules of the event still run.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import Cursor
from psycopg.types.json import Jsonb

from contracts import COMMANDS_BY_TYPE, EVENTS_BY_TYPE, ChangeOrderStatus, ContractModel
from worker.db import outbox
from worker.db.connection import Connection
from worker.domain.decisions import Move, OrderState, Rejection, Unchanged, decide_status_change
from worker.domain.workflow import Workflow
from worker.rules.engine import (
    PlannedAction,
    PlannedNotification,
    PlannedStatusChange,
    PlannedTask,
    UnplannableAction,
    Verdict,
)
from worker.rules.facts import Stay, TriggerEvent, as_json

CLAIM_FIRING = """
INSERT INTO rule_firings (
    event_id, rule_name, order_number, order_version, trigger, outcome, reason, detail, depth,
    facts, correlation_id, fired_at
) VALUES (
    %(event_id)s, %(rule_name)s, %(order_number)s, %(order_version)s, %(trigger)s, %(outcome)s,
    %(reason)s, %(detail)s, %(depth)s, %(facts)s, %(correlation_id)s, %(now)s
)
ON CONFLICT (event_id, rule_name) DO NOTHING
RETURNING event_id
"""

INSERT_ACTION = """
INSERT INTO rule_actions (
    event_id, rule_name, position, action, target, outcome, reason, detail, message_id
) VALUES (
    %(event_id)s, %(rule_name)s, %(position)s, %(action)s, %(target)s, %(outcome)s, %(reason)s,
    %(detail)s, %(message_id)s
)
"""

INSERT_TASK = """
INSERT INTO tasks (
    task_id, order_number, title, assignee, due_at, rule_name, event_id, created_at
) VALUES (
    %(task_id)s, %(order_number)s, %(title)s, %(assignee)s, %(due_at)s, %(rule_name)s,
    %(event_id)s, %(created_at)s
)
ON CONFLICT (task_id) DO NOTHING
"""

SELECT_ORDER_STATE = "SELECT status, version FROM orders WHERE order_number = %(order_number)s"

# Keyset pagination over (entered at, order number): one scan visits each stay
# at most once, so it ends, and stays whose condition was false (not recorded,
# judged again on every scan) cannot hide the stays behind them.
SELECT_STAYS = """
SELECT o.order_number, o.status, o.version, h.from_status, h.actor, h.reason, o.amount,
       o.currency, o.customer_id, o.customer_type, o.order_date, h.changed_at, h.correlation_id,
       h.rule_depth
FROM orders o
JOIN order_status_history h ON h.order_number = o.order_number AND h.version = o.version
WHERE o.status = %(status)s
  AND h.changed_at <= %(entered_before)s
  AND (%(after_at)s::timestamptz IS NULL
       OR (h.changed_at, o.order_number) > (%(after_at)s::timestamptz, %(after_number)s::text))
  AND NOT EXISTS (
      SELECT 1 FROM rule_firings f
      WHERE f.rule_name = %(rule_name)s
        AND f.order_number = o.order_number
        AND f.order_version = o.version
  )
ORDER BY h.changed_at, o.order_number
LIMIT %(limit)s
"""

RECORDED_OUTCOMES = frozenset({"fired", "stopped", "failed"})


def record_verdicts(
    conn: Connection,
    event: TriggerEvent,
    verdicts: Sequence[Verdict],
    workflow: Workflow,
    now: datetime,
) -> int:
    """Record the verdicts for `event` and their effects in one transaction.

    Returns how many firings were new. A verdict whose (event, rule) is already
    recorded is skipped entirely: that is what makes a redelivery harmless. A
    rule that did not match is not recorded, not even for a stay: its
    condition may hold on a later scan (`stayed_hours > 48.0` with `for: 24h`).
    """
    to_record = [verdict for verdict in verdicts if verdict.outcome in RECORDED_OUTCOMES]
    if not to_record:
        return 0  # most events fire nothing: no transaction at all
    new = 0
    with conn.transaction(), conn.cursor() as cur:
        for verdict in to_record:
            new += _record(conn, cur, event, verdict, workflow=workflow, now=now)
        if new:
            outbox.notify_relay(cur)
    return new


def _record(
    conn: Connection,
    cur: Cursor[Any],
    event: TriggerEvent,
    verdict: Verdict,
    *,
    workflow: Workflow,
    now: datetime,
) -> int:
    try:
        with conn.transaction():
            if not _claim(cur, event, verdict, now):
                return 0
            for planned in verdict.actions:
                _carry_out(cur, event, verdict.rule.name, planned, workflow=workflow)
    except (psycopg.DataError, psycopg.IntegrityError) as error:
        # The savepoint is gone, and with it the claim: claim again, as failed.
        failed = Verdict(verdict.rule, "failed", f"{type(error).__name__}: {error}", "action_error")
        return int(_claim(cur, event, failed, now))
    return 1


def _claim(cur: Cursor[Any], event: TriggerEvent, verdict: Verdict, now: datetime) -> bool:
    row = cur.execute(
        CLAIM_FIRING,
        {
            "event_id": event.event_id,
            "rule_name": verdict.rule.name,
            "order_number": event.order_number,
            "order_version": event.order_version,
            "trigger": event.kind,
            "outcome": verdict.outcome,
            "reason": verdict.reason,
            "detail": verdict.why,
            "depth": event.depth,
            "facts": Jsonb(as_json(event.facts)),
            "correlation_id": event.correlation_id,
            "now": now,
        },
    ).fetchone()
    return row is not None


@dataclass(frozen=True)
class _ActionRecord:
    """What one action became, as its `rule_actions` row says."""

    action: str
    target: str
    message_id: UUID
    outcome: str = "queued"
    reason: str | None = None
    detail: str | None = None


def _carry_out(
    cur: Cursor[Any],
    event: TriggerEvent,
    rule_name: str,
    planned: PlannedAction,
    *,
    workflow: Workflow,
) -> None:
    """Write the action's effect (outbox rows, a task) and its `rule_actions` row."""
    record = _effect(cur, event, rule_name, planned, workflow)
    cur.execute(
        INSERT_ACTION,
        {
            "event_id": event.event_id,
            "rule_name": rule_name,
            "position": planned.position,
            **asdict(record),
        },
    )


def _effect(
    cur: Cursor[Any],
    event: TriggerEvent,
    rule_name: str,
    planned: PlannedAction,
    workflow: Workflow,
) -> _ActionRecord:
    match planned:
        case PlannedStatusChange(command=command):
            outcome, reason, detail = _precheck(cur, command, workflow)
            if outcome == "queued":
                routing_key = COMMANDS_BY_TYPE["ChangeOrderStatus"].routing_key
                _enqueue(
                    cur,
                    event,
                    command.command_id,
                    "commands",
                    routing_key=routing_key,
                    message=command,
                )
            target = command.to_status
            return _ActionRecord("set_status", target, command.command_id, outcome, reason, detail)
        case PlannedNotification(notification=note):
            _enqueue(
                cur,
                event,
                note.notification_id,
                "notifications",
                routing_key=note.channel,
                message=note,
            )
            return _ActionRecord("notify", note.channel, note.notification_id, detail=note.message)
        case PlannedTask(task=task):
            cur.execute(
                INSERT_TASK,
                {
                    "task_id": task.task_id,
                    "order_number": task.order_number,
                    "title": task.title,
                    "assignee": task.assignee,
                    "due_at": task.due_at,
                    "rule_name": rule_name,
                    "event_id": event.event_id,
                    "created_at": task.created_at,
                },
            )
            routing_key = EVENTS_BY_TYPE["TaskCreated"].routing_key
            _enqueue(cur, event, task.event_id, None, routing_key=routing_key, message=task)
            detail = f"for {task.assignee}"
            return _ActionRecord("create_task", task.title, task.task_id, detail=detail)
        case UnplannableAction():
            return _ActionRecord(
                planned.kind, "-", planned.message_id, "failed", "invalid_action", planned.detail
            )


def _enqueue(
    cur: Cursor[Any],
    event: TriggerEvent,
    message_id: UUID,
    exchange: str | None,
    *,
    routing_key: str,
    message: ContractModel,
) -> None:
    """Put what a rule sends in the outbox; its causation is the event that fired the rule."""
    outbox.enqueue_message(
        cur,
        outbox.OutboxMessage(
            message_id=message_id,
            exchange=exchange,
            routing_key=routing_key,
            message_type=type(message).__name__,
            payload=message.model_dump(mode="json"),
            order_number=event.order_number,
            causation_id=event.event_id,
            correlation_id=event.correlation_id or str(event.event_id),
        ),
    )


def _precheck(
    cur: Cursor[Any], command: ChangeOrderStatus, workflow: Workflow
) -> tuple[str, str | None, str | None]:
    """Decide as the status worker would, now, so a hopeless move is recorded with its reason.

    The status worker decides again when the command arrives; if the order
    moved in between, its outcome (see `commands show`) is the final word.
    """
    row = cur.execute(SELECT_ORDER_STATE, {"order_number": command.order_number}).fetchone()
    state = OrderState(status=row[0], version=row[1]) if row else None
    decision = decide_status_change(state, command, workflow)
    match decision:
        case Move():
            return "queued", None, None
        case Unchanged():
            return "skipped", None, f"the order is already {decision.status}"
        case Rejection():
            return "failed", decision.reason.value, decision.detail


def find_stays(
    conn: Connection,
    rule_name: str,
    status: str,
    entered_before: datetime,
    limit: int,
    *,
    after: tuple[datetime, str] | None = None,
) -> list[Stay]:
    """Orders in `status` since before `entered_before` that `rule_name` has not fired on.

    Oldest stay first; `after` (the last stay's entered_at and order number)
    asks for the next page.
    """
    after_at, after_number = after if after else (None, None)
    with conn.transaction():
        rows = conn.execute(
            SELECT_STAYS,
            {
                "status": status,
                "entered_before": entered_before,
                "after_at": after_at,
                "after_number": after_number,
                "rule_name": rule_name,
                "limit": limit,
            },
        ).fetchall()
    return [Stay(*row) for row in rows]
