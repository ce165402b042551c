"""What the CLI shows of orders and commands; `--json` prints these models as they are."""

from datetime import date, datetime
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


class OrderDetail(OrderSummary):
    """An order with its lines and its whole history, oldest change first."""

    lines: tuple[OrderLine, ...]
    history: tuple[HistoryEntry, ...]


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
