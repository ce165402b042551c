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


Event = OrderCreated | OrderStatusChanged | OrderStatusChangeRejected
