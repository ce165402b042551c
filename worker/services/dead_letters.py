"""Browsing and purging the dead-letter store: the use cases behind `dlq` and `/dead-letters`.

Each function takes the store (`DeadLetterStore`; in production
`worker.db.dead_letters.PostgresDeadLetterStore`) and a plain typed request,
and returns plain typed results: no printing, no options, no HTTP. Replaying
is in `worker.services.dead_letter_replay`.
"""

from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from worker.db.dead_letters import Selection
from worker.dead_letter_views import (
    DeadLetterDetail,
    DeadLetterGroup,
    DeadLetterState,
    DeadLetterSummary,
)
from worker.messaging.dead_letter_record import UNKNOWN_REASON
from worker.messaging.poison import DeadLetterReason

BROKER_REASONS = ("delivery_limit",)
"""Reasons the broker gives a message it dead-letters itself (its `x-death`)."""


class DeadLetterStore(Protocol):
    """The dead-letter store as the services use it."""

    def groups(self, *, everything: bool) -> list[DeadLetterGroup]:
        """Counts by reason and source queue; only groups with dead messages unless `everything`."""

    def summaries(self, selection: Selection) -> list[DeadLetterSummary]:
        """Entries matching `selection`, the most recent failure first."""

    def each_detail(self, selection: Selection) -> Iterator[DeadLetterDetail]:
        """Every field of the entries matching `selection`, in the order they were stored."""

    def stored_reasons(self) -> list[str]:
        """Every reason an entry has, whatever its state."""

    def get(self, entry_id: int) -> DeadLetterDetail | None:
        """One entry, or None."""

    def ids(self, selection: Selection) -> list[int]:
        """The ids matching `selection`, in the order they were stored."""

    def claimed(self, entry_id: int) -> AbstractContextManager[DeadLetterDetail | None]:
        """Hold entry `entry_id` locked for the block; None if another session holds it."""

    def mark_replayed(self, entry_id: int, actor: str) -> bool:
        """Record a confirmed replay; False if the entry was purged meanwhile."""

    def purge(
        self, selection: Selection, actor: str, older_than: timedelta | None, note: str | None
    ) -> list[int]:
        """Mark the selected entries purged by `actor`, now, and why; return their ids."""


class UnknownReason(ValueError):
    """A filter named a reason no entry can have; the message lists the known ones."""


class DeadLetterFilter(BaseModel):
    """Which entries to list (`dlq list`, `GET /dead-letters`); None means "any"."""

    model_config = ConfigDict(frozen=True)

    reason: str | None = None
    queue: str | None = None
    order_number: str | None = None
    since: datetime | None = None
    """Last failed at or after."""
    until: datetime | None = None
    """Last failed at or before."""
    state: DeadLetterState | None = None
    limit: int = Field(default=50, ge=1, le=10_000)


class PurgeRequest(BaseModel):
    """Which entries to purge (exactly one selector), who purges them, and why."""

    model_config = ConfigDict(frozen=True)

    ids: tuple[int, ...] = ()
    reason: str | None = None
    older_than: timedelta | None = None
    """Last failed longer ago than this."""
    actor: str = Field(min_length=1)
    note: str | None = None
    """Why they are purged."""

    @model_validator(mode="after")
    def _one_selector(self) -> Self:
        if sum((bool(self.ids), self.reason is not None, self.older_than is not None)) != 1:
            raise ValueError("choose exactly one of ids, reason or older_than")
        return self


class PurgeResult(BaseModel):
    """What a purge marked, and which of the ids asked for it did not (unknown or purged)."""

    purged: list[int]
    not_purged: list[int]


FIXED_REASONS = (*(reason.value for reason in DeadLetterReason), *BROKER_REASONS, UNKNOWN_REASON)
"""The reasons the workers, the broker and the ingester give."""


def known_reasons(store: DeadLetterStore) -> list[str]:
    """Every reason an entry can have: the fixed ones, then any other the store holds."""
    return [*FIXED_REASONS, *sorted(set(store.stored_reasons()) - set(FIXED_REASONS))]


def check_reason(store: DeadLetterStore, reason: str | None) -> None:
    """Raise UnknownReason unless `reason` is None or one an entry can have."""
    if reason is None or reason in FIXED_REASONS:
        return
    known = known_reasons(store)
    if reason not in known:
        raise UnknownReason(f"unknown reason {reason!r}; known reasons: {', '.join(known)}")


def dead_letter_groups(
    store: DeadLetterStore, *, everything: bool = False
) -> list[DeadLetterGroup]:
    """The failure groups (reason and source queue), most dead first."""
    return store.groups(everything=everything)


def list_dead_letters(store: DeadLetterStore, query: DeadLetterFilter) -> list[DeadLetterSummary]:
    """The entries matching `query`, the most recent failure first; refuses an unknown reason."""
    check_reason(store, query.reason)
    return store.summaries(_selection(query, limit=query.limit))


def export_dead_letters(
    store: DeadLetterStore, query: DeadLetterFilter
) -> Iterator[DeadLetterDetail]:
    """Every field of every entry matching `query` (its limit aside), in the order stored."""
    check_reason(store, query.reason)
    return store.each_detail(_selection(query, limit=None))


def show_dead_letter(store: DeadLetterStore, entry_id: int) -> DeadLetterDetail | None:
    """One entry with every field, or None if there is none with that id."""
    return store.get(entry_id)


def purge_dead_letters(store: DeadLetterStore, request: PurgeRequest) -> PurgeResult:
    """Mark the selected entries purged with who, when and why; nothing is deleted."""
    check_reason(store, request.reason)
    selection = Selection(ids=request.ids or None, reason=request.reason)
    purged = store.purge(selection, request.actor, request.older_than, request.note)
    return PurgeResult(purged=purged, not_purged=[i for i in request.ids if i not in purged])


def _selection(query: DeadLetterFilter, limit: int | None) -> Selection:
    return Selection(
        reason=query.reason,
        queue=query.queue,
        order_number=query.order_number,
        since=query.since,
        until=query.until,
        states=[query.state] if query.state else None,
        limit=limit,
    )


def when(moment: datetime | None) -> str | None:
    """A moment as people read it in a report: ISO 8601 to the second."""
    return moment.isoformat(timespec="seconds") if moment else None


def replay_summary(entry: DeadLetterDetail) -> str | None:
    """How often, when last and by whom `entry` was replayed; None if never."""
    if not entry.replay_count:
        return None
    return f"{entry.replay_count} time(s), last {when(entry.replayed_at)} by {entry.replayed_by}"
