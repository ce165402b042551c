"""Wire contracts of the order-status service: commands in, events out. No I/O here."""

from contracts.base import SCHEMA_VERSION, ContractModel
from contracts.catalog import (
    COMMANDS,
    COMMANDS_BY_ROUTING_KEY,
    COMMANDS_BY_TYPE,
    EVENTS,
    EVENTS_BY_TYPE,
    NOTIFICATION,
    MessageKind,
)
from contracts.commands import ChangeOrderStatus, Command, CreateOrder, Customer, OrderLine
from contracts.events import (
    Event,
    OrderCreated,
    OrderSnapshot,
    OrderStatusChanged,
    OrderStatusChangeRejected,
    TaskCreated,
)
from contracts.notifications import Notification
from contracts.vocabulary import CommandOutcome, RejectionReason

__all__ = [
    "COMMANDS",
    "COMMANDS_BY_ROUTING_KEY",
    "COMMANDS_BY_TYPE",
    "EVENTS",
    "EVENTS_BY_TYPE",
    "NOTIFICATION",
    "SCHEMA_VERSION",
    "ChangeOrderStatus",
    "Command",
    "CommandOutcome",
    "ContractModel",
    "CreateOrder",
    "Customer",
    "Event",
    "MessageKind",
    "Notification",
    "OrderCreated",
    "OrderLine",
    "OrderSnapshot",
    "OrderStatusChangeRejected",
    "OrderStatusChanged",
    "RejectionReason",
    "TaskCreated",
]
