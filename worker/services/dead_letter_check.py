"""What would happen to a dead letter if it were replayed now, decided without changing anything.

A replay goes back to the queue it failed in, so the check is that queue's
consumer's. For the status worker: its decoder, then the inbox (a command id
already processed changes nothing when replayed), then the domain's own rules
against the order as it is now, read without locks. For the rules worker: its
event decoder; an event that decodes would be judged again against the rules
then loaded, which this check does not run (judging reads the clock and the
orders, and recording its firings is the effect a dry run must not have).

The reads come through `CurrentState`, so the decision is tested with a fake.
"""

from typing import Literal, Protocol
from uuid import UUID

from pydantic import BaseModel, ConfigDict, computed_field

from contracts import ChangeOrderStatus, Command, CommandOutcome
from worker.domain.decisions import (
    CommandDecision,
    Move,
    OrderState,
    Register,
    Rejection,
    decide_creation,
    decide_status_change,
    outcome_of,
)
from worker.domain.fingerprints import creation_fingerprint, fingerprint
from worker.domain.workflow import Workflow
from worker.messaging.decoding import decode_command
from worker.messaging.event_decoding import Ignored, decode_event
from worker.messaging.poison import Poison
from worker.messaging.replay import Replay
from worker.messaging.topology import RULE_TRIGGER_EVENTS, Topology

Decision = Literal[
    "accepted",
    "unchanged",
    "duplicate",
    "rejected",
    "already_processed",
    "command_id_reused",
    "judged_again",
    "ignored",
]

PREDICTED: dict[CommandOutcome, Decision] = {
    CommandOutcome.APPLIED: "accepted",
    CommandOutcome.UNCHANGED: "unchanged",
    CommandOutcome.DUPLICATE: "duplicate",
    CommandOutcome.REJECTED: "rejected",
}
"""The decision a replayed command gets, from the outcome the status worker would record."""

DEAD_LETTERED_AGAIN: frozenset[Decision] = frozenset({"command_id_reused"})
"""Decisions after which the consumer dead-letters the replay again."""


class CurrentState(Protocol):
    """What the check reads of the database as it is now (`worker.db.current_state`)."""

    def processed_fingerprint(self, command_id: UUID) -> str | None:
        """The content fingerprint the inbox recorded for `command_id`, or None."""

    def order_state(self, order_number: str) -> OrderState | None:
        """The order's status and version, or None for an order never registered."""

    def registration(self, order_number: str) -> str | None:
        """The content fingerprint the order was registered with, or None."""


class ReplayCheck(BaseModel):
    """Whether a replay would decode, and what its queue's consumer would then decide."""

    model_config = ConfigDict(frozen=True)

    decodes: bool
    problem: str | None = None
    """Why it would not decode: `reason: detail`."""
    decision: Decision | None = None
    """Status worker: `accepted`, `unchanged`, `duplicate`, `rejected`, `already_processed`
    or `command_id_reused`. Rules worker: `judged_again` or `ignored`."""
    explanation: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def fails_again(self) -> bool:
        """Whether the replay would be dead-lettered again (a rejection is an outcome, not this)."""
        return not self.decodes or self.decision in DEAD_LETTERED_AGAIN

    @property
    def rejected(self) -> bool:
        """Whether the replay would be recorded as a business rejection."""
        return self.decision == "rejected"

    def summary(self) -> str:
        """One line: what the consumer would make of the replay."""
        if not self.decodes:
            return f"does not decode ({self.problem})"
        return f"decodes; {self.decision} ({self.explanation})"


def check_replay(
    state: CurrentState, workflow: Workflow, replay: Replay, topology: Topology
) -> ReplayCheck:
    """Decode `replay` as its queue's consumer would, and decide it if it can, read-only."""
    if replay.queue == topology.rules_queue:
        return _check_event(replay)
    decoded = decode_command(replay.envelope())
    if isinstance(decoded, Poison):
        return ReplayCheck(decodes=False, problem=f"{decoded.reason.value}: {decoded.detail}")
    command = decoded.command
    seen = state.processed_fingerprint(command.command_id)
    if seen is not None:
        if seen == fingerprint(command):
            return _decided(
                "already_processed",
                "this command id was processed before; a replay changes nothing",
            )
        return _decided(
            "command_id_reused",
            "this command id was processed with other content; a replay is dead-lettered",
        )
    return _check_command(state, workflow, command)


def _decided(decision: Decision, explanation: str | None) -> ReplayCheck:
    return ReplayCheck(decodes=True, decision=decision, explanation=explanation)


def _check_event(replay: Replay) -> ReplayCheck:
    decoded = decode_event(replay.envelope(), RULE_TRIGGER_EVENTS)
    if isinstance(decoded, Poison):
        return ReplayCheck(decodes=False, problem=f"{decoded.reason.value}: {decoded.detail}")
    if isinstance(decoded, Ignored):
        return _decided("ignored", f"the rules worker does not react to {decoded.type_name}")
    return _decided(
        "judged_again",
        f"the rules worker would judge this {type(decoded).__name__} again with the current "
        "rules; a rule that already fired for it does not fire twice",
    )


def _check_command(state: CurrentState, workflow: Workflow, command: Command) -> ReplayCheck:
    """Decide `command` as the status worker would, and predict what its inbox records."""
    if isinstance(command, ChangeOrderStatus):
        order = state.order_state(command.order_number)
        decision: CommandDecision = decide_status_change(order, command, workflow)
    else:
        registered = state.registration(command.order_number)
        content = creation_fingerprint(command)
        decision = decide_creation(command.order_number, content, registered, workflow)
    outcome, _reason, explanation = outcome_of(decision)
    match decision:
        case Move(from_status=before, to_status=after):
            explanation = f"{before} -> {after}"
        case Register(status=status):
            explanation = f"registered as {status}"
        case Rejection(reason=reason, detail=detail):
            explanation = f"{reason.value}: {detail}"
    return _decided(PREDICTED[outcome], explanation)
