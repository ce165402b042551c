"""Commands that upstream systems publish to the commands exchange."""

from datetime import date
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, StringConstraints

from contracts.base import (
    NO_NUL,
    SCHEMA_VERSION,
    ContractModel,
    CurrencyCode,
    LongText,
    Money,
    OrderNumber,
    StatusCode,
    Text,
)


class Customer(ContractModel):
    """The customer an order belongs to."""

    id: Text
    name: Text
    type: Text = Field(description="Customer segment used by rules, e.g. enterprise, vip.")


class OrderLine(ContractModel):
    """One line of an order."""

    sku: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL)]
    name: Text
    quantity: int = Field(gt=0, le=1_000_000)
    unit_price: Money


class CreateOrder(ContractModel):
    """Register a new order; it starts in the workflow's initial status (pending)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    command_id: UUID
    order_number: OrderNumber
    customer: Customer
    amount: Money
    currency: CurrencyCode
    order_date: date
    lines: tuple[OrderLine, ...] = Field(default=(), max_length=1000)
    actor: Text | None = Field(
        default=None, description="Who registered the order; recorded in the history."
    )


class ChangeOrderStatus(ContractModel):
    """Move an order to another status, optionally only if it is still as expected."""

    schema_version: Literal[1] = SCHEMA_VERSION
    command_id: UUID
    order_number: OrderNumber
    to_status: StatusCode
    expected_status: StatusCode | None = Field(
        default=None, description="Refuse with version_conflict unless the order has this status."
    )
    expected_version: int | None = Field(
        default=None,
        ge=1,
        description="Refuse with version_conflict unless the order has this version.",
    )
    actor: Text
    reason: LongText | None = None
    rule_depth: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="How many rule-caused steps led to this command; set by the rules worker. "
        "The status worker honours it only when the actor starts with `rule:` and counts any "
        "other command as 0, so upstream systems leave it out.",
    )


Command = CreateOrder | ChangeOrderStatus
