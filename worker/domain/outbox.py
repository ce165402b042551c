"""What the planners hand the outbox: a message for the relay to publish after the commit."""

from dataclasses import dataclass
from typing import Any
from uuid import UUID


@dataclass(frozen=True)
class OutboxMessage:
    """A message of any kind for the relay to publish: an event, a command, a notification.

    `exchange` is None for the events exchange. `causation_id` is stored in the
    `command_id` column and sent as the `causation_id` header: for what rules
    send, it is the event that fired them.
    """

    message_id: UUID
    exchange: str | None
    routing_key: str
    message_type: str
    payload: dict[str, Any]
    order_number: str
    causation_id: UUID
    correlation_id: str | None
