"""What a command does to an order, decided without any I/O."""

from dataclasses import dataclass

from contracts import ChangeOrderStatus, CommandOutcome, RejectionReason
from worker.domain.workflow import Workflow

RULE_ACTOR_PREFIX = "rule:"
"""The actor of every command a rule sends: `rule:<name>`."""


def trusted_rule_depth(command: ChangeOrderStatus) -> int:
    """The command's rule depth if a rule sent it, else 0.

    Only the rules worker counts rule-caused steps; a depth set by anyone else
    would let an upstream system switch the rules off for its changes.
    """
    return command.rule_depth if command.actor.startswith(RULE_ACTOR_PREFIX) else 0


@dataclass(frozen=True)
class OrderState:
    """The part of an order a status change looks at."""

    status: str
    version: int


@dataclass(frozen=True)
class Move:
    """Move the order to `to_status`; it then has `new_version`."""

    from_status: str
    to_status: str
    new_version: int


@dataclass(frozen=True)
class Unchanged:
    """The order already has the requested status; nothing to do."""

    status: str


@dataclass(frozen=True)
class Rejection:
    """Refuse the command for a business reason."""

    reason: RejectionReason
    detail: str


StatusDecision = Move | Unchanged | Rejection


def decide_status_change(
    order: OrderState | None, command: ChangeOrderStatus, workflow: Workflow
) -> StatusDecision:
    """Decide what `command` does to `order` (None when no such order exists)."""
    if rejection := _refuse_unknown_statuses(command, workflow):
        return rejection
    if order is None:
        return Rejection(
            RejectionReason.UNKNOWN_ORDER, f"no order with number {command.order_number!r}"
        )
    if rejection := _refuse_stale_expectation(order, command):
        return rejection
    if command.to_status == order.status:
        return Unchanged(order.status)
    if not workflow.allows(order.status, command.to_status):
        allowed = ", ".join(workflow.next_statuses(order.status)) or "none"
        return Rejection(
            RejectionReason.INVALID_TRANSITION,
            f"{order.status} -> {command.to_status} is not allowed (allowed: {allowed})",
        )
    return Move(order.status, command.to_status, order.version + 1)


def _refuse_unknown_statuses(command: ChangeOrderStatus, workflow: Workflow) -> Rejection | None:
    if not workflow.knows(command.to_status):
        return Rejection(
            RejectionReason.UNKNOWN_STATUS, f"{command.to_status!r} is not a workflow status"
        )
    if command.expected_status is not None and not workflow.knows(command.expected_status):
        return Rejection(
            RejectionReason.UNKNOWN_STATUS,
            f"expected status {command.expected_status!r} is not a workflow status",
        )
    return None


def _refuse_stale_expectation(order: OrderState, command: ChangeOrderStatus) -> Rejection | None:
    """Optimistic concurrency: the sender saw another status or version than there is now."""
    if command.expected_status is not None and command.expected_status != order.status:
        return Rejection(
            RejectionReason.VERSION_CONFLICT,
            f"expected status {command.expected_status} but the order is {order.status}",
        )
    if command.expected_version is not None and command.expected_version != order.version:
        return Rejection(
            RejectionReason.VERSION_CONFLICT,
            f"expected version {command.expected_version} but the order is at {order.version}",
        )
    return None


@dataclass(frozen=True)
class Register:
    """Register the order in the workflow's initial status."""

    status: str


@dataclass(frozen=True)
class AlreadyRegistered:
    """The order exists with exactly this content: a repeated registration."""

    detail: str


CreationDecision = Register | AlreadyRegistered | Rejection


def decide_creation(
    order_number: str,
    fingerprint: str,
    existing_fingerprint: str | None,
    workflow: Workflow,
) -> CreationDecision:
    """Decide what registering an order does, given the fingerprint of any existing one."""
    if existing_fingerprint is None:
        return Register(workflow.initial)
    if existing_fingerprint == fingerprint:
        return AlreadyRegistered(f"order {order_number} is already registered with this content")
    return Rejection(
        RejectionReason.DUPLICATE_ORDER,
        f"order {order_number} is already registered with different content",
    )


CommandDecision = StatusDecision | CreationDecision


def outcome_of(
    decision: CommandDecision,
) -> tuple[CommandOutcome, RejectionReason | None, str | None]:
    """What the inbox records for `decision`: its outcome, and the reason and detail if any."""
    match decision:
        case Move() | Register():
            return CommandOutcome.APPLIED, None, None
        case Unchanged():
            return CommandOutcome.UNCHANGED, None, f"the order is already {decision.status}"
        case AlreadyRegistered():
            return CommandOutcome.DUPLICATE, None, decision.detail
        case Rejection():
            return CommandOutcome.REJECTED, decision.reason, decision.detail
