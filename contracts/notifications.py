"""Notifications that automation rules send to `{ns}.notifications`, keyed by channel."""

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, StringConstraints

from contracts.base import SCHEMA_VERSION, ContractModel, LongText, OrderNumber, Text

Channel = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")]
"""A notification channel, also the routing key: words joined by dots, e.g. `sales.managers`."""


class Notification(ContractModel):
    """A message for people, rendered by a rule; consumers deliver it (mail, chat, SMS)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    notification_id: UUID
    channel: Annotated[Channel, StringConstraints(max_length=100)]
    order_number: OrderNumber
    message: LongText
    rule: Text = Field(description="The name of the rule that sent it.")
    causation_id: UUID = Field(description="The event that made the rule fire.")
    correlation_id: str | None = None
    created_at: datetime
