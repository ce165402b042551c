"""The events a decided command produces, built from the contract models."""

from datetime import datetime
from uuid import uuid4

from contracts import (
    ChangeOrderStatus,
    Command,
    CreateOrder,
    OrderCreated,
    OrderSnapshot,
    OrderStatusChanged,
    OrderStatusChangeRejected,
)
from worker.domain.decisions import Move, Rejection
from worker.domain.incoming import IncomingCommand


def order_created(
    incoming: IncomingCommand, command: CreateOrder, status: str, actor: str, at: datetime
) -> OrderCreated:
    """The event for a registered order."""
    return OrderCreated(
        event_id=uuid4(),
        command_id=command.command_id,
        correlation_id=incoming.correlation,
        order_number=command.order_number,
        status=status,
        version=1,
        customer=command.customer,
        amount=command.amount,
        currency=command.currency,
        order_date=command.order_date,
        lines=command.lines,
        actor=actor,
        created_at=at,
    )


def status_changed(
    incoming: IncomingCommand,
    command: ChangeOrderStatus,
    move: Move,
    snapshot: OrderSnapshot,
    at: datetime,
    *,
    rule_depth: int,
) -> OrderStatusChanged:
    """The event for an applied status change, with what rules need of the order.

    `rule_depth` is the depth the planner trusts (see `trusted_rule_depth`).
    """
    return OrderStatusChanged(
        event_id=uuid4(),
        command_id=command.command_id,
        correlation_id=incoming.correlation,
        order_number=command.order_number,
        from_status=move.from_status,
        to_status=move.to_status,
        version=move.new_version,
        actor=command.actor,
        reason=command.reason,
        changed_at=at,
        order=snapshot,
        rule_depth=rule_depth,
    )


def command_rejected(
    incoming: IncomingCommand, command: Command, rejection: Rejection, at: datetime
) -> OrderStatusChangeRejected:
    """The event for a command refused for a business reason."""
    return OrderStatusChangeRejected(
        event_id=uuid4(),
        command_id=command.command_id,
        command_type="CreateOrder" if isinstance(command, CreateOrder) else "ChangeOrderStatus",
        correlation_id=incoming.correlation,
        order_number=command.order_number,
        reason=rejection.reason,
        detail=rejection.detail,
        actor=command.actor,
        rejected_at=at,
    )
