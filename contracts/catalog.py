"""Which message types exist and the routing keys they travel under."""

from dataclasses import dataclass

from contracts.base import ContractModel
from contracts.commands import ChangeOrderStatus, CreateOrder
from contracts.events import (
    OrderCreated,
    OrderStatusChanged,
    OrderStatusChangeRejected,
    TaskCreated,
)
from contracts.notifications import Notification


@dataclass(frozen=True)
class MessageKind:
    """A message type: its model, its AMQP `type` name and its routing key."""

    model: type[ContractModel]
    routing_key: str

    @property
    def type_name(self) -> str:
        return self.model.__name__


COMMANDS: tuple[MessageKind, ...] = (
    MessageKind(CreateOrder, "order.create"),
    MessageKind(ChangeOrderStatus, "order.status.change"),
)
EVENTS: tuple[MessageKind, ...] = (
    MessageKind(OrderCreated, "order.created"),
    MessageKind(OrderStatusChanged, "order.status.changed"),
    MessageKind(OrderStatusChangeRejected, "order.status.rejected"),
    MessageKind(TaskCreated, "task.created"),
)
NOTIFICATION = MessageKind(Notification, "<channel>")
"""Published to the notifications exchange with the rule's channel as the routing key."""

COMMANDS_BY_TYPE = {kind.type_name: kind for kind in COMMANDS}
COMMANDS_BY_ROUTING_KEY = {kind.routing_key: kind for kind in COMMANDS}
EVENTS_BY_TYPE = {kind.type_name: kind for kind in EVENTS}
