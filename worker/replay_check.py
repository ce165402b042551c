"""What would happen to a dead letter if it were replayed now, decided without changing anything.

Decoding uses the status worker's decoder; the decision uses the domain's own
rules against the order as it is now, read without locks. The inbox is
consulted first: a command id already processed changes nothing when replayed.
"""

from dataclasses import dataclass

from contracts import ChangeOrderStatus, CreateOrder
from worker.db.connection import Connection
from worker.db.reads import seen_command
from worker.domain.decisions import (
    AlreadyRegistered,
    Move,
    OrderState,
    Register,
    Rejection,
    Unchanged,
    decide_creation,
    decide_status_change,
)
from worker.domain.fingerprints import creation_fingerprint, fingerprint
from worker.domain.workflow import Workflow
from worker.messaging.decoding import decode_command
from worker.messaging.poison import Poison
from worker.messaging.replay import Replay

SELECT_ORDER_STATE = "SELECT status, version FROM orders WHERE order_number = %(order_number)s"
SELECT_REGISTRATION = (
    "SELECT creation_fingerprint FROM orders WHERE order_number = %(order_number)s"
)


@dataclass(frozen=True)
class ReplayCheck:
    """Whether a replay would decode, and what the status worker would then decide."""

    decodes: bool
    problem: str | None
    """Why it would not decode: `reason: detail`."""
    decision: str | None
    """`accepted`, `unchanged`, `duplicate`, `rejected` or `already_processed`."""
    explanation: str | None


def check_replay(conn: Connection, workflow: Workflow, replay: Replay) -> ReplayCheck:
    """Decode `replay` and decide it against the current orders and workflow, read-only."""
    decoded = decode_command(replay.envelope())
    if isinstance(decoded, Poison):
        return ReplayCheck(False, f"{decoded.reason.value}: {decoded.detail}", None, None)
    command = decoded.command
    seen = seen_command(conn, command.command_id)
    if seen is not None:
        same = seen.fingerprint == fingerprint(command)
        return ReplayCheck(
            True,
            None,
            "already_processed" if same else "command_id_reused",
            "this command id was processed before; a replay changes nothing"
            if same
            else "this command id was processed with other content; a replay is dead-lettered",
        )
    if isinstance(command, ChangeOrderStatus):
        return _check_change(conn, workflow, command)
    return _check_creation(conn, workflow, command)


def _check_change(conn: Connection, workflow: Workflow, command: ChangeOrderStatus) -> ReplayCheck:
    row = conn.execute(SELECT_ORDER_STATE, {"order_number": command.order_number}).fetchone()
    state = OrderState(status=row[0], version=row[1]) if row else None
    match decide_status_change(state, command, workflow):
        case Move(from_status=before, to_status=after):
            return ReplayCheck(True, None, "accepted", f"{before} -> {after}")
        case Unchanged(status=status):
            return ReplayCheck(True, None, "unchanged", f"the order is already {status}")
        case Rejection(reason=reason, detail=detail):
            return ReplayCheck(True, None, "rejected", f"{reason.value}: {detail}")


def _check_creation(conn: Connection, workflow: Workflow, command: CreateOrder) -> ReplayCheck:
    row = conn.execute(SELECT_REGISTRATION, {"order_number": command.order_number}).fetchone()
    content = creation_fingerprint(command)
    match decide_creation(command.order_number, content, row[0] if row else None, workflow):
        case Register(status=status):
            return ReplayCheck(True, None, "accepted", f"registered as {status}")
        case AlreadyRegistered(detail=detail):
            return ReplayCheck(True, None, "duplicate", detail)
        case Rejection(reason=reason, detail=detail):
            return ReplayCheck(True, None, "rejected", f"{reason.value}: {detail}")
