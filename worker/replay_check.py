"""What would happen to a dead letter if it were replayed now, decided without changing anything.

A replay goes back to the queue it failed in, so the check is that queue's
consumer's. For the status worker: its decoder, then the inbox (a command id
already processed changes nothing when replayed), then the domain's own rules
against the order as it is now, read without locks. For the rules worker: its
event decoder; an event that decodes would be judged again against the rules
then loaded, which this check does not run (judging reads the clock and the
orders, and recording its firings is the effect a dry run must not have).
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
from worker.messaging.event_decoding import Ignored, decode_event
from worker.messaging.poison import Poison
from worker.messaging.replay import Replay
from worker.messaging.topology import RULE_TRIGGER_EVENTS, Topology

SELECT_ORDER_STATE = "SELECT status, version FROM orders WHERE order_number = %(order_number)s"
SELECT_REGISTRATION = (
    "SELECT creation_fingerprint FROM orders WHERE order_number = %(order_number)s"
)


@dataclass(frozen=True)
class ReplayCheck:
    """Whether a replay would decode, and what its queue's consumer would then decide."""

    decodes: bool
    problem: str | None
    """Why it would not decode: `reason: detail`."""
    decision: str | None
    """Status worker: `accepted`, `unchanged`, `duplicate`, `rejected`, `already_processed`
    or `command_id_reused`. Rules worker: `judged_again` or `ignored`."""
    explanation: str | None


def check_replay(
    conn: Connection, workflow: Workflow, replay: Replay, topology: Topology
) -> ReplayCheck:
    """Decode `replay` as its queue's consumer would, and decide it if it can, read-only."""
    if replay.queue == topology.rules_queue:
        return _check_event(replay)
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


def _check_event(replay: Replay) -> ReplayCheck:
    decoded = decode_event(replay.envelope(), RULE_TRIGGER_EVENTS)
    if isinstance(decoded, Poison):
        return ReplayCheck(False, f"{decoded.reason.value}: {decoded.detail}", None, None)
    if isinstance(decoded, Ignored):
        return ReplayCheck(
            True, None, "ignored", f"the rules worker does not react to {decoded.type_name}"
        )
    return ReplayCheck(
        True,
        None,
        "judged_again",
        f"the rules worker would judge this {type(decoded).__name__} again with the current "
        "rules; a rule that already fired for it does not fire twice",
    )


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
