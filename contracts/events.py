"""Events the outbox relay publishes to the events exchange."""

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import Field

from contracts.base import SCHEMA_VERSION, ContractModel, CurrencyCode, Money, OrderNumber, Text
from contracts.commands import Customer, OrderLine
from contracts.vocabulary import RejectionReason


class OrderSnapshot(ContractModel):
    """The order fields rules and consumers need, so they never read our database."""

    amount: Money
    currency: CurrencyCode
    customer_id: Text
    customer_type: Text
    order_date: date


class OrderCreated(ContractModel):
    """An order was registered."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: UUID
    command_id: UUID
    correlation_id: str | None = None
    order_number: OrderNumber
    status: str
    version: int
    customer: Customer
    amount: Money
    currency: CurrencyCode
    order_date: date
    lines: tuple[OrderLine, ...] = ()
    actor: str
    created_at: datetime


class OrderStatusChanged(ContractModel):
    """An order moved from one status to another."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: UUID
    command_id: UUID = Field(description="The command that caused the change (causation).")
    correlation_id: str | None = None
    order_number: OrderNumber
    from_status: str
    to_status: str
    version: int = Field(description="The order's version after the change.")
    actor: str
    reason: str | None = None
    changed_at: datetime
    order: OrderSnapshot
    rule_depth: int = Field(
        default=0,
        description="How many rule-caused steps led to this change (0: none); "
        "the rules worker stops firing past its depth limit.",
    )


class OrderStatusChangeRejected(ContractModel):
    """A command was refused for a business reason; nothing about the order changed."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: UUID
    command_id: UUID
    command_type: Literal["CreateOrder", "ChangeOrderStatus"]
    correlation_id: str | None = None
    order_number: str
    reason: RejectionReason
    detail: str
    actor: str | None = None
    rejected_at: datetime


class TaskCreated(ContractModel):
    """An automation rule created a follow-up task for an order."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: UUID
    task_id: UUID
    order_number: OrderNumber
    title: Text
    assignee: Text
    due_at: datetime
    rule: Text = Field(description="The name of the rule that created the task.")
    causation_id: UUID = Field(description="The event that made the rule fire.")
    correlation_id: str | None = None
    created_at: datetime


Event = OrderCreated | OrderStatusChanged | OrderStatusChangeRejected | TaskCreated
