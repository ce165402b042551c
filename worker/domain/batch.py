"""Decide a whole batch in memory, in arrival order, before anything is written.

The database layer reads what the batch needs in two statements (the orders it
names, locked, and what the inbox already knows of its command ids), this
module decides every command one after another as if they were applied one by
one, and the database layer writes the plan in a handful of set-based
statements. A batch that holds several commands for one order therefore sees
each move's effect on the next: the right from-status and version every time.
"""

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from uuid import UUID

from contracts import (
    ChangeOrderStatus,
    Command,
    CommandOutcome,
    CreateOrder,
    Event,
    OrderSnapshot,
    RejectionReason,
)
from worker.domain import events
from worker.domain.decisions import (
    AlreadyRegistered,
    Move,
    OrderState,
    Register,
    Rejection,
    Unchanged,
    decide_creation,
    decide_status_change,
    outcome_of,
    trusted_rule_depth,
)
from worker.domain.fingerprints import creation_fingerprint, fingerprint
from worker.domain.incoming import IncomingCommand
from worker.domain.outcomes import ApplyResult
from worker.domain.workflow import Workflow

DEFAULT_CREATION_ACTOR = "system"


@dataclass(frozen=True)
class KnownOrder:
    """What deciding needs of an order that exists (or that this batch registers)."""

    status: str
    version: int
    snapshot: OrderSnapshot
    creation_fingerprint: str


@dataclass(frozen=True)
class RecordedCommand:
    """What the inbox says of a command id it has seen before."""

    outcome: CommandOutcome
    reason: RejectionReason | None
    detail: str | None
    fingerprint: str


@dataclass(frozen=True)
class Claim:
    """A first sighting of a command id: its inbox row, written with its outcome."""

    incoming: IncomingCommand
    result: ApplyResult
    fingerprint: str


@dataclass(frozen=True)
class Registration:
    command: CreateOrder
    status: str
    creation_fingerprint: str


@dataclass(frozen=True)
class HistoryEntry:
    """One row of the audit trail: who moved the order from where to where, and why."""

    incoming: IncomingCommand
    from_status: str | None
    to_status: str
    version: int
    actor: str
    reason: str | None
    rule_depth: int = 0
    """How many rule-caused steps led to this change (0 for registrations and upstream moves)."""


@dataclass
class BatchPlan:
    """Everything a batch writes, in arrival order, and one result per command."""

    results: list[ApplyResult] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    deliveries: Counter[UUID] = field(default_factory=Counter)
    """How often each claimed command id arrived in this batch (repeats included; another
    command reusing the id is not a repeat)."""
    redeliveries: Counter[UUID] = field(default_factory=Counter)
    """Further deliveries of command ids the inbox held before this batch (same content)."""
    registrations: list[Registration] = field(default_factory=list)
    moves: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Each moved order's final status and version."""
    history: list[HistoryEntry] = field(default_factory=list)
    events: list[tuple[Event, IncomingCommand]] = field(default_factory=list)


def plan_batch(
    batch: Sequence[IncomingCommand],
    orders: Mapping[str, KnownOrder],
    recorded: Mapping[UUID, RecordedCommand],
    workflow: Workflow,
    now: datetime,
) -> BatchPlan:
    """Decide every command of `batch` in order, given the orders and inbox as read."""
    planner = _Planner(dict(orders), dict(recorded), workflow, now)
    for incoming in batch:
        planner.plan.results.append(planner.decide(incoming))
    return planner.plan


class _Planner:
    """Keeps the orders and the inbox as this batch has left them so far."""

    def __init__(
        self,
        orders: dict[str, KnownOrder],
        recorded: dict[UUID, RecordedCommand],
        workflow: Workflow,
        now: datetime,
    ) -> None:
        self.plan = BatchPlan()
        self._orders = orders
        self._recorded = recorded
        self._recorded_before = set(recorded)
        self._workflow = workflow
        self._now = now

    def decide(self, incoming: IncomingCommand) -> ApplyResult:
        command = incoming.command
        content = fingerprint(command)
        known = self._recorded.get(command.command_id)
        if known is not None:
            reused = known.fingerprint != content
            # Another command under a used id is no delivery of the first: it is
            # dead-lettered, and the first's delivery count and last sighting stay.
            if not reused:
                before = command.command_id in self._recorded_before
                counted = self.plan.redeliveries if before else self.plan.deliveries
                counted[command.command_id] += 1
            first = _result(command, known.outcome, known.reason, known.detail)
            return replace(first, redelivered=True, content_conflict=reused)
        if isinstance(command, CreateOrder):
            result = self._register(incoming, command)
        else:
            result = self._change_status(incoming, command)
        self._recorded[command.command_id] = RecordedCommand(
            result.outcome, result.reason, result.detail, content
        )
        self.plan.claims.append(Claim(incoming, result, content))
        self.plan.deliveries[command.command_id] = 1
        return result

    def _change_status(self, incoming: IncomingCommand, command: ChangeOrderStatus) -> ApplyResult:
        order = self._orders.get(command.order_number)
        state = OrderState(order.status, order.version) if order else None
        decision = decide_status_change(state, command, self._workflow)
        match decision:
            case Move():
                depth = trusted_rule_depth(command)
                if order is None:
                    raise RuntimeError("a move was decided for an order that does not exist")
                self._orders[command.order_number] = replace(
                    order, status=decision.to_status, version=decision.new_version
                )
                self.plan.moves[command.order_number] = (decision.to_status, decision.new_version)
                self.plan.history.append(
                    HistoryEntry(
                        incoming,
                        decision.from_status,
                        decision.to_status,
                        decision.new_version,
                        command.actor,
                        command.reason,
                        rule_depth=depth,
                    )
                )
                event: Event = events.status_changed(
                    incoming, command, decision, order.snapshot, self._now, rule_depth=depth
                )
                self.plan.events.append((event, incoming))
            case Rejection():
                rejected = events.command_rejected(incoming, command, decision, self._now)
                self.plan.events.append((rejected, incoming))
            case Unchanged():
                pass
        return _result(command, *outcome_of(decision))

    def _register(self, incoming: IncomingCommand, command: CreateOrder) -> ApplyResult:
        content = creation_fingerprint(command)
        existing = self._orders.get(command.order_number)
        decision = decide_creation(
            command.order_number,
            content,
            existing.creation_fingerprint if existing else None,
            self._workflow,
        )
        match decision:
            case Register():
                actor = command.actor or DEFAULT_CREATION_ACTOR
                self._orders[command.order_number] = KnownOrder(
                    status=decision.status,
                    version=1,
                    snapshot=OrderSnapshot(
                        amount=command.amount,
                        currency=command.currency,
                        customer_id=command.customer.id,
                        customer_type=command.customer.type,
                        order_date=command.order_date,
                    ),
                    creation_fingerprint=content,
                )
                self.plan.registrations.append(Registration(command, decision.status, content))
                self.plan.history.append(
                    HistoryEntry(incoming, None, decision.status, 1, actor, None)
                )
                created = events.order_created(incoming, command, decision.status, actor, self._now)
                self.plan.events.append((created, incoming))
            case Rejection():
                rejected = events.command_rejected(incoming, command, decision, self._now)
                self.plan.events.append((rejected, incoming))
            case AlreadyRegistered():
                pass
        return _result(command, *outcome_of(decision))


def _result(
    command: Command,
    outcome: CommandOutcome,
    reason: RejectionReason | None,
    detail: str | None,
) -> ApplyResult:
    return ApplyResult(
        command_id=command.command_id,
        order_number=command.order_number,
        outcome=outcome,
        reason=reason,
        detail=detail,
    )
