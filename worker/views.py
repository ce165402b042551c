"""What the CLI shows of orders and commands; `--json` prints these models as they are."""

from datetime import date, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from contracts import CommandOutcome, Customer, OrderLine
from contracts.base import Money


class View(BaseModel):
    model_config = ConfigDict(frozen=True)


class HistoryEntry(View):
    """One status change of an order; the registration has no `from_status`."""

    from_status: str | None
    to_status: str
    version: int
    actor: str
    reason: str | None
    changed_at: datetime
    command_id: UUID
    correlation_id: str | None


class OrderSummary(View):
    """An order as a CRM list shows it."""

    order_number: str
    status: str
    version: int
    amount: Money
    currency: str
    customer: Customer
    order_date: date
    created_at: datetime
    updated_at: datetime


class Task(View):
    """A follow-up task as a rule's `create_task` action creates it (one `tasks` row)."""

    task_id: UUID
    order_number: str
    title: str
    assignee: str
    due_at: datetime
    rule_name: str
    event_id: UUID
    """The event that made the rule fire."""
    created_at: datetime


class TaskView(Task):
    """A follow-up task a rule created, and when it was completed."""

    completed_at: datetime | None


class RuleActionView(View):
    """One action of a rule firing; for set_status, what the status worker made of it."""

    position: int
    action: str
    target: str
    outcome: str
    reason: str | None
    detail: str | None
    message_id: UUID
    command_outcome: str | None = None
    command_reason: str | None = None


class RuleFiringView(View):
    """A rule that fired (or was stopped, or failed) for an event, with what its condition saw."""

    event_id: UUID
    rule_name: str
    trigger: str
    order_version: int
    outcome: str
    reason: str | None
    detail: str | None
    depth: int
    facts: dict[str, Any]
    fired_at: datetime
    actions: tuple[RuleActionView, ...] = ()


class CommandRecord(View):
    """What became of a command, from the inbox."""

    command_id: UUID
    command_type: str
    order_number: str
    outcome: CommandOutcome
    reason: str | None
    detail: str | None
    correlation_id: str | None
    processed_at: datetime
    deliveries: int
    last_seen_at: datetime


class OrderDetail(OrderSummary):
    """An order with its lines and its whole history, oldest change first.

    `next_statuses` are the moves the workflow allows from its status now;
    `commands` are every command the inbox recorded for it, rejected ones
    included, oldest first.
    """

    lines: tuple[OrderLine, ...]
    history: tuple[HistoryEntry, ...]
    rule_firings: tuple[RuleFiringView, ...] = ()
    tasks: tuple[TaskView, ...] = ()
    next_statuses: tuple[str, ...] = ()
    commands: tuple[CommandRecord, ...] = ()
