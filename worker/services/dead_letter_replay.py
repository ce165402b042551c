"""Replaying dead letters, or saying what it would do (`dlq replay`, `POST /dead-letters/replay`).

Each entry goes back to the queue it failed in, alone (see
`worker.messaging.replay`). Its row is locked (`FOR UPDATE SKIP LOCKED`) while
it is checked, published, confirmed and marked replayed, so two replays, or a
replay and a purge, never both act on it; it is marked only once the broker
confirmed it. A replay interrupted before the mark can be run again, and at
worst sends a message twice, which the inbox turns into a repeat that changes
nothing.

Before publishing, each entry is checked as its consumer would take it now
(`dead_letter_check`). One that would fail again (it does not decode, or would
be dead-lettered again) is refused unless the request forces it; one the
consumer would reject is replayed, the rejection being an outcome, and its
outcome says so.
"""

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Literal, Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from worker.crashpoints import REPLAY_AFTER_PUBLISH_BEFORE_MARK, crash_point
from worker.db.dead_letters import Selection
from worker.dead_letter_views import DeadLetterDetail
from worker.domain.workflow import Workflow
from worker.errors import OrderStatusError
from worker.messaging.publisher import ConfirmTimeout, PublishFailed
from worker.messaging.replay import Replay, replay_of, replay_queues
from worker.messaging.topology import Topology
from worker.services.dead_letter_check import CurrentState, ReplayCheck, check_replay
from worker.services.dead_letters import DeadLetterStore, check_reason, replay_summary, when

ReplayResult = Literal[
    "replayed", "would_replay", "refused", "skipped", "failed", "unconfirmed", "not_found"
]
FAILED_RESULTS: frozenset[ReplayResult] = frozenset({"refused", "failed", "unconfirmed", "skipped"})
"""Results that leave an entry asked for not replayed."""


class ReplayPublisher(Protocol):
    """Publishes one replay and returns once the broker confirmed it
    (`worker.messaging.replay.BrokerReplayPublisher`).

    Raises `PublishFailed` (`ConfirmTimeout` when the broker did not answer in
    time) for that message, or an `OrderStatusError` when the broker cannot
    take any more.
    """

    def publish(self, message: Replay) -> None:
        """Publish `message` and wait for its confirm."""


class ReplayReads(CurrentState, Protocol):
    """The reads of a replay check, and the workflow they are judged against."""

    def workflow(self) -> Workflow:
        """The workflow as stored now."""


@dataclass(frozen=True)
class ReplayParts:
    """What a replay works with; `publishing` is opened only when there is something to send."""

    store: DeadLetterStore
    reads: ReplayReads
    topology: Topology
    publishing: Callable[[], AbstractContextManager[ReplayPublisher]]
    clock: Callable[[], float] = field(default=time.monotonic)
    sleep: Callable[[float], None] = field(default=time.sleep)


class ReplayRequest(BaseModel):
    """Which entries to replay (exactly one of ids, reason, all_dead), and how."""

    model_config = ConfigDict(frozen=True)

    ids: tuple[int, ...] = ()
    reason: str | None = None
    """Every dead entry with this reason."""
    all_dead: bool = False
    """Every dead entry."""
    limit: int | None = Field(default=None, ge=1)
    rate: float | None = Field(default=None, gt=0)
    """At most this many messages per second."""
    force: bool = False
    """Also replay entries replayed before, and entries the check says would fail again."""
    dry_run: bool = False
    """Say what would happen; change nothing."""
    actor: str = Field(min_length=1)

    @model_validator(mode="after")
    def _one_selector(self) -> Self:
        if sum((bool(self.ids), self.reason is not None, self.all_dead)) != 1:
            raise ValueError("choose exactly one of ids, reason or all_dead")
        return self


class ReplayOutcome(BaseModel):
    """What became of one entry asked for."""

    model_config = ConfigDict(frozen=True)

    id: int
    result: ReplayResult
    queue: str | None = None
    """Where it went, or would go."""
    routing_key: str | None = None
    why: str | None = None
    """Why it was refused, skipped, or failed."""
    needs_force: bool = False
    """Refused only because the request did not force it (replayed before, or would fail again)."""
    check: ReplayCheck | None = None
    """What its queue's consumer would make of it, when it was checked."""


class ReplayReport(BaseModel):
    """One outcome per entry, by id; `stopped` says why the replay ended before the last
    (the broker or the database failed), and which entries were replayed until then."""

    outcomes: list[ReplayOutcome]
    stopped: str | None = None

    def counts(self) -> dict[str, int]:
        """How many entries had each result."""
        found: dict[str, int] = {}
        for outcome in self.outcomes:
            found[outcome.result] = found.get(outcome.result, 0) + 1
        return found


Progress = Callable[[int, int], None]
"""Told (entries done, entries selected) after each entry of a replay."""


def replay_dead_letters(
    parts: ReplayParts, request: ReplayRequest, progress: Progress | None = None
) -> ReplayReport:
    """Replay the selected entries with confirms, or with `dry_run` only say what would happen."""
    check_reason(parts.store, request.reason)
    outcomes: list[ReplayOutcome] = []
    if request.ids:
        # Only ids are read up front; each entry's body is read when its turn comes.
        selected = parts.store.ids(Selection(ids=request.ids, limit=request.limit))
        missing = dict.fromkeys(i for i in request.ids if i not in selected)
        outcomes += [ReplayOutcome(id=i, result="not_found") for i in missing]
    else:
        states = ["dead", "replayed"] if request.force else ["dead"]
        selection = Selection(reason=request.reason, states=states, limit=request.limit)
        selected = parts.store.ids(selection)
    replaying = _Replaying(parts, request)
    stopped = None
    if request.dry_run:
        outcomes += [replaying.dry_run(entry_id) for entry_id in selected]
    elif selected:
        stopped = replaying.publish(selected, outcomes, progress)
    return ReplayReport(outcomes=sorted(outcomes, key=lambda o: o.id), stopped=stopped)


class _Replaying:
    def __init__(self, parts: ReplayParts, request: ReplayRequest) -> None:
        self._parts = parts
        self._request = request
        self._workflow: Workflow | None = None

    def dry_run(self, entry_id: int) -> ReplayOutcome:
        entry = self._parts.store.get(entry_id)
        if entry is None:
            return ReplayOutcome(id=entry_id, result="not_found")
        refused = self._refused(entry)
        if refused:
            return refused
        message = replay_of(entry, self._parts.topology)
        return _outcome(entry_id, "would_replay", message, check=self._check(message))

    def publish(
        self, selected: Sequence[int], outcomes: list[ReplayOutcome], progress: Progress | None
    ) -> str | None:
        """Replay each of `selected` in turn, paced; say why if a server failure stopped it."""
        started = self._parts.clock()
        with self._parts.publishing() as publisher:
            for count, entry_id in enumerate(selected):
                if self._request.rate:
                    due = started + count / self._request.rate
                    self._parts.sleep(max(0.0, due - self._parts.clock()))
                try:
                    outcomes.append(self._replay_one(publisher, entry_id))
                except OrderStatusError as error:
                    done = ", ".join(str(o.id) for o in outcomes if o.result == "replayed")
                    return f"the replay stopped: {error}; replayed so far: {done or 'none'}"
                if progress:
                    progress(count + 1, len(selected))
        return None

    def _replay_one(self, publisher: ReplayPublisher, entry_id: int) -> ReplayOutcome:
        """Check, publish, confirm and mark one entry while holding its row lock."""
        store = self._parts.store
        try:
            with store.claimed(entry_id) as entry:
                if entry is None:
                    why = "another replay or a purge holds it right now; run again to see its state"
                    return ReplayOutcome(id=entry_id, result="skipped", why=why)
                refused = self._refused(entry)
                if refused:
                    return refused
                message = replay_of(entry, self._parts.topology)
                check = self._check(message)
                if check.fails_again and not self._request.force:
                    why = f"it would fail again: {check.summary()}"
                    return _outcome(
                        entry_id, "refused", message, check=check, why=why, needs_force=True
                    )
                publisher.publish(message)  # returns once the broker confirmed it
                crash_point(REPLAY_AFTER_PUBLISH_BEFORE_MARK)
                store.mark_replayed(entry_id, self._request.actor)
                return _outcome(entry_id, "replayed", message, check=check)
        except ConfirmTimeout as error:
            why = f"{error}; it may have been published; running the replay again is safe"
            return ReplayOutcome(id=entry_id, result="unconfirmed", why=why)
        except PublishFailed as error:
            return ReplayOutcome(id=entry_id, result="failed", why=str(error))

    def _refused(self, entry: DeadLetterDetail) -> ReplayOutcome | None:
        """The outcome for an entry that may not be replayed at all as it stands, else None."""
        if entry.state == "purged":
            why = f"purged {when(entry.purged_at)} by {entry.purged_by}"
        elif entry.state == "replayed" and not self._request.force:
            why = f"already replayed {replay_summary(entry)}"
            return ReplayOutcome(id=entry.id, result="refused", why=why, needs_force=True)
        elif entry.source_queue not in replay_queues(self._parts.topology):
            why = f"source queue {entry.source_queue!r} is not a queue of this service"
        else:
            return None
        return ReplayOutcome(id=entry.id, result="refused", why=why)

    def _check(self, message: Replay) -> ReplayCheck:
        if self._workflow is None:
            self._workflow = self._parts.reads.workflow()
        return check_replay(self._parts.reads, self._workflow, message, self._parts.topology)


def _outcome(
    entry_id: int,
    result: ReplayResult,
    message: Replay,
    *,
    check: ReplayCheck,
    why: str | None = None,
    needs_force: bool = False,
) -> ReplayOutcome:
    return ReplayOutcome(
        id=entry_id,
        result=result,
        queue=message.queue,
        routing_key=message.routing_key,
        why=why,
        needs_force=needs_force,
        check=check,
    )
