"""The history checker: did every confirmed command take effect once, and every change leave once?

Fault scenarios publish with confirms and keep the commands the broker took, in
the order it took them. After the run has drained, what the database and an
event queue hold is read (`tests/support/observation.py`) and judged here,
without I/O, against what applying those commands in that order with the
workflow's own decisions gives. Every count but `repeated_deliveries` is a bug.
"""

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from contracts import ChangeOrderStatus, Command, CreateOrder
from worker.domain.decisions import (
    Move,
    OrderState,
    Register,
    decide_creation,
    decide_status_change,
)
from worker.domain.fingerprints import creation_fingerprint
from worker.domain.workflow import Workflow

CHANGE_EVENT_TYPES = frozenset({"OrderCreated", "OrderStatusChanged"})
"""The outbox rows that stand for a history row (one each)."""
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class Confirmed:
    """A command the broker confirmed, and where it came in the order of confirms."""

    position: int
    command: Command

    @property
    def order_number(self) -> str:
        return self.command.order_number


@dataclass(frozen=True)
class HistoryRow:
    order_number: str
    version: int
    to_status: str
    command_id: str


@dataclass(frozen=True)
class OutboxRow:
    event_id: str
    command_id: str
    message_type: str
    published: bool


@dataclass(frozen=True)
class Observed:
    """What a drained run left: the database's tables and the events a queue received."""

    outcomes: dict[str, str]
    """Inbox outcome by command id."""
    dead_lettered: Counter[str]
    """Dead-letter store entries by message id."""
    history: Sequence[HistoryRow]
    outbox: Sequence[OutboxRow]
    orders: dict[str, tuple[str, int]]
    """(status, version) by order number."""
    received_event_ids: Sequence[str]
    """Every event id received, in arrival order, repeats included."""


@dataclass
class Report:
    """The counts, with a few example ids of each, so a failure says where to look."""

    confirmed: int = 0
    applied: int = 0
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    wrong_final_state: list[str] = field(default_factory=list)
    missing_events: list[str] = field(default_factory=list)
    unexpected_events: list[str] = field(default_factory=list)
    repeated_deliveries: int = 0

    BAD = ("lost", "doubled", "wrong_final_state", "missing_events", "unexpected_events")

    def counts(self) -> dict[str, int]:
        """Every count, bad ones and the allowed ones, as a flat mapping."""
        bad = {name: len(getattr(self, name)) for name in self.BAD}
        return {
            "confirmed": self.confirmed,
            "applied": self.applied,
            **bad,
            "repeated_deliveries": self.repeated_deliveries,
        }

    @property
    def clean(self) -> bool:
        return not any(getattr(self, name) for name in self.BAD)

    def describe(self) -> str:
        lines = [", ".join(f"{name}={count}" for name, count in self.counts().items())]
        for name in self.BAD:
            offenders = getattr(self, name)
            if offenders:
                lines.append(f"  {name}: {', '.join(offenders[:MAX_EXAMPLES])}")
        return "\n".join(lines)

    def assert_clean(self) -> None:
        assert self.clean, "the history is not clean:\n" + self.describe()


def check_history(
    confirmed: Iterable[Confirmed],
    observed: Observed,
    workflow: Workflow,
    unconfirmed: Iterable[Confirmed] = (),
) -> Report:
    """Judge a drained run against the commands the broker confirmed.

    `unconfirmed` are commands sent whose confirm never came (the connection
    broke first): they may or may not have arrived, so none of them counts as
    lost, but those that took effect count, in their place, for the final state.
    """
    sent = list(confirmed)
    commands = sorted([*sent, *unconfirmed], key=lambda item: item.position)
    report = Report(confirmed=len({str(item.command.command_id) for item in sent}))
    report.lost = _lost(sent, observed)
    report.doubled = _doubled(observed)
    expected = _expected_orders(commands, observed, workflow)
    report.wrong_final_state = [
        f"{number} (expected {want}, found {observed.orders.get(number)})"
        for number, want in sorted(expected.items())
        if observed.orders.get(number) != want
    ]
    report.applied = sum(1 for outcome in observed.outcomes.values() if outcome == "applied")
    report.missing_events, report.unexpected_events, report.repeated_deliveries = _events(observed)
    return report


def _lost(commands: Sequence[Confirmed], observed: Observed) -> list[str]:
    return [
        str(item.command.command_id)
        for item in commands
        if str(item.command.command_id) not in observed.outcomes
        and not observed.dead_lettered[str(item.command.command_id)]
    ]


def _doubled(observed: Observed) -> list[str]:
    doubled = [
        f"command {command_id}: {count} history rows"
        for command_id, count in Counter(row.command_id for row in observed.history).items()
        if count > 1
    ]
    doubled += [
        f"message {message_id}: {count} dead-letter entries"
        for message_id, count in observed.dead_lettered.items()
        if count > 1
    ]
    versions: defaultdict[str, list[int]] = defaultdict(list)
    for row in observed.history:
        versions[row.order_number].append(row.version)
    doubled += [
        f"order {number}: versions {sorted(found)}"
        for number, found in versions.items()
        if sorted(found) != list(range(1, len(found) + 1))
    ]
    return doubled


def _expected_orders(
    commands: Sequence[Confirmed], observed: Observed, workflow: Workflow
) -> dict[str, tuple[str, int] | None]:
    """Each order's (status, version) after its commands, in confirm order, once each.

    A command the dead-letter store holds (and the inbox does not) took no
    effect; a repeated command id is a duplicate and changes nothing.
    """
    states: dict[str, OrderState | None] = {}
    fingerprints: dict[str, str] = {}
    seen: set[str] = set()
    for item in commands:
        command_id = str(item.command.command_id)
        number = item.order_number
        states.setdefault(number, None)
        if command_id in seen or command_id not in observed.outcomes:
            continue
        seen.add(command_id)
        if isinstance(item.command, CreateOrder):
            decision = decide_creation(
                number,
                creation_fingerprint(item.command),
                fingerprints.get(number),
                workflow,
            )
            if isinstance(decision, Register):
                states[number] = OrderState(decision.status, 1)
                fingerprints[number] = creation_fingerprint(item.command)
        elif isinstance(item.command, ChangeOrderStatus):
            change = decide_status_change(states[number], item.command, workflow)
            if isinstance(change, Move):
                states[number] = OrderState(change.to_status, change.new_version)
    return {
        number: None if state is None else (state.status, state.version)
        for number, state in states.items()
    }


def _events(observed: Observed) -> tuple[list[str], list[str], int]:
    """Missing events, unexpected events, and how many deliveries were repeats."""
    change_events: defaultdict[str, list[OutboxRow]] = defaultdict(list)
    for event in observed.outbox:
        if event.message_type in CHANGE_EVENT_TYPES:
            change_events[event.command_id].append(event)
    received = Counter(observed.received_event_ids)
    missing = []
    for row in observed.history:
        events = change_events.get(row.command_id, [])
        if len(events) != 1:
            missing.append(f"{row.order_number} v{row.version}: {len(events)} outbox events")
        elif not events[0].published:
            missing.append(
                f"{row.order_number} v{row.version}: event {events[0].event_id} unpublished"
            )
        elif not received[events[0].event_id]:
            missing.append(
                f"{row.order_number} v{row.version}: event {events[0].event_id} not received"
            )
    known = {row.event_id for row in observed.outbox}
    unexpected = [event_id for event_id in received if event_id not in known]
    repeats = sum(count - 1 for count in received.values())
    return missing, unexpected, repeats
