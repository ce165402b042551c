"""Decide every row the rules transaction writes for one trigger event, before it writes any.

The rules worker judges an event (`worker.rules.engine`), the store reads the
current state of the orders its `set_status` actions name (`orders_to_read`,
then `worker.db.order_state`), and `plan_firings` turns the verdicts into rows:
the `rule_firings` row of each verdict worth recording, and for a rule that
fired its `rule_actions` rows, tasks and outbox messages. `worker.db.rules_store`
then only writes the plan. Like `worker.domain.batch.plan_batch` for commands,
this keeps every decision (which verdicts are recorded, what a pre-check says,
which exchange a message goes to) in one pure function that unit tests cover
without servers, and leaves the transaction nothing to decide but whether the
database accepted it.

Two things are decided at write time, because only the database knows them:
whether the firing is new (the claim of (event id, rule) is the idempotency
key; a redelivery writes nothing), and whether the database accepts a rule's
effects (if not, `PlannedFiring.refused` is the firing recorded instead).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from contracts import COMMANDS_BY_TYPE, EVENTS_BY_TYPE, ChangeOrderStatus, ContractModel
from worker.domain.decisions import Move, OrderState, Rejection, Unchanged, decide_status_change
from worker.domain.outbox import OutboxMessage
from worker.domain.workflow import Workflow
from worker.rules.engine import (
    PlannedAction,
    PlannedNotification,
    PlannedStatusChange,
    PlannedTask,
    UnplannableAction,
    Verdict,
)
from worker.rules.facts import TriggerEvent, as_json
from worker.views import Task

RECORDED_OUTCOMES = frozenset({"fired", "stopped", "failed"})
"""Verdicts that are recorded. A rule that did not match is not: it may match a later scan."""

ACTION_ERROR = "action_error"
"""The reason of a firing whose effects the database refused."""

ActionOutcome = Literal["queued", "skipped", "failed"]


@dataclass(frozen=True)
class FiringRow:
    """One `rule_firings` row: what a rule made of the event, and why."""

    event_id: UUID
    rule_name: str
    order_number: str
    order_version: int
    trigger: str
    outcome: str
    reason: str | None
    detail: str
    depth: int
    facts: dict[str, Any]
    """The facts the condition saw, JSON-ready."""
    correlation_id: str | None
    fired_at: datetime


@dataclass(frozen=True)
class ActionRow:
    """One `rule_actions` row: what an action became (queued, skipped or failed) and its id."""

    position: int
    action: str
    target: str
    message_id: UUID
    outcome: ActionOutcome = "queued"
    reason: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class PlannedFiring:
    """Everything one verdict writes, if its claim is new; in the order it is written."""

    firing: FiringRow
    tasks: tuple[Task, ...] = ()
    outbox: tuple[OutboxMessage, ...] = ()
    """In action order, which is the order the relay publishes them in."""
    actions: tuple[ActionRow, ...] = ()

    def refused(self, error: str) -> FiringRow:
        """The firing to record instead when the database refused this rule's effects."""
        return replace(self.firing, outcome="failed", reason=ACTION_ERROR, detail=error)


@dataclass(frozen=True)
class FiringPlan:
    """The firings of one event, in the order of its verdicts."""

    firings: tuple[PlannedFiring, ...]


def recorded(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """The verdicts that are recorded: those that fired, stopped or failed."""
    return [verdict for verdict in verdicts if verdict.outcome in RECORDED_OUTCOMES]


def orders_to_read(verdicts: Sequence[Verdict]) -> list[str]:
    """The orders whose current state the plan needs: those a recorded `set_status` moves."""
    numbers = {
        action.command.order_number
        for verdict in recorded(verdicts)
        for action in verdict.actions
        if isinstance(action, PlannedStatusChange)
    }
    return sorted(numbers)


def plan_firings(
    event: TriggerEvent,
    verdicts: Sequence[Verdict],
    workflow: Workflow,
    orders: Mapping[str, OrderState],
    now: datetime,
) -> FiringPlan:
    """Every row to write for `verdicts`, given the orders as read (absent: no such order)."""
    return FiringPlan(
        tuple(_plan_firing(event, verdict, workflow, orders, now) for verdict in recorded(verdicts))
    )


def _plan_firing(
    event: TriggerEvent,
    verdict: Verdict,
    workflow: Workflow,
    orders: Mapping[str, OrderState],
    now: datetime,
) -> PlannedFiring:
    firing = FiringRow(
        event_id=event.event_id,
        rule_name=verdict.rule.name,
        order_number=event.order_number,
        order_version=event.order_version,
        trigger=event.kind,
        outcome=verdict.outcome,
        reason=verdict.reason,
        detail=verdict.why,
        depth=event.depth,
        facts=as_json(event.facts),
        correlation_id=event.correlation_id,
        fired_at=now,
    )
    tasks: list[Task] = []
    outbox: list[OutboxMessage] = []
    actions: list[ActionRow] = []
    for planned in verdict.actions:
        action, task, message = _plan_action(event, verdict.rule.name, planned, workflow, orders)
        actions.append(action)
        tasks.extend([task] if task else [])
        outbox.extend([message] if message else [])
    return PlannedFiring(firing, tuple(tasks), tuple(outbox), tuple(actions))


def _plan_action(
    event: TriggerEvent,
    rule_name: str,
    planned: PlannedAction,
    workflow: Workflow,
    orders: Mapping[str, OrderState],
) -> tuple[ActionRow, Task | None, OutboxMessage | None]:
    """An action's `rule_actions` row, and its task and outbox message if it has them."""
    match planned:
        case PlannedStatusChange(command=command):
            action = _precheck(planned.position, command, workflow, orders)
            if action.outcome != "queued":
                return action, None, None
            routing_key = COMMANDS_BY_TYPE["ChangeOrderStatus"].routing_key
            message = _outbox_message(event, command.command_id, "commands", routing_key, command)
            return action, None, message
        case PlannedNotification(notification=note):
            action = ActionRow(
                planned.position, "notify", note.channel, note.notification_id, detail=note.message
            )
            message = _outbox_message(
                event, note.notification_id, "notifications", note.channel, note
            )
            return action, None, message
        case PlannedTask(task=task):
            row = Task(
                task_id=task.task_id,
                order_number=task.order_number,
                title=task.title,
                assignee=task.assignee,
                due_at=task.due_at,
                rule_name=rule_name,
                event_id=event.event_id,
                created_at=task.created_at,
            )
            action = ActionRow(
                planned.position,
                "create_task",
                task.title,
                task.task_id,
                detail=f"for {task.assignee}",
            )
            routing_key = EVENTS_BY_TYPE["TaskCreated"].routing_key
            return action, row, _outbox_message(event, task.event_id, None, routing_key, task)
        case UnplannableAction():
            action = ActionRow(
                planned.position,
                planned.kind,
                "-",
                planned.message_id,
                "failed",
                "invalid_action",
                planned.detail,
            )
            return action, None, None


def _precheck(
    position: int,
    command: ChangeOrderStatus,
    workflow: Workflow,
    orders: Mapping[str, OrderState],
) -> ActionRow:
    """Decide as the status worker would, now, so a hopeless move is recorded with its reason.

    The status worker decides again when the command arrives; if the order
    moved in between, its outcome (see `commands show`) is the final word.
    """
    decision = decide_status_change(orders.get(command.order_number), command, workflow)
    row = ActionRow(position, "set_status", command.to_status, command.command_id)
    match decision:
        case Move():
            return row
        case Unchanged():
            return replace(row, outcome="skipped", detail=f"the order is already {decision.status}")
        case Rejection():
            return replace(
                row, outcome="failed", reason=decision.reason.value, detail=decision.detail
            )


def _outbox_message(
    event: TriggerEvent,
    message_id: UUID,
    exchange: str | None,
    routing_key: str,
    message: ContractModel,
) -> OutboxMessage:
    """What a rule sends; its causation is the event that fired the rule."""
    return OutboxMessage(
        message_id=message_id,
        exchange=exchange,
        routing_key=routing_key,
        message_type=type(message).__name__,
        payload=message.model_dump(mode="json"),
        order_number=event.order_number,
        causation_id=event.event_id,
        correlation_id=event.correlation_id or str(event.event_id),
    )
