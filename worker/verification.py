"""Judging the invariants `order-status verify` checks, without I/O.

The product promises (ARCHITECTURE, "Principles"): an order's history has one
row per version, gapless from 1, ending at the order's status and version;
every history row has exactly one event in the outbox; events leave the
outbox soon after their commit; and the inbox agrees with the history (an
applied command has its one history row, any other outcome none). The
queries in `worker.db.verify` pick out rows that may break these; each check
here says what a row breaks, with the ids an operator needs to look it up.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from worker.db.verify import Suspects


class Check(StrEnum):
    """What an invariant is about; the name a violation is listed under."""

    HISTORY_GAPLESS = "history_gapless"
    STATUS_MATCHES_HISTORY = "status_matches_history"
    ONE_EVENT_PER_CHANGE = "one_event_per_change"
    OUTBOX_DRAINED = "outbox_drained"
    INBOX_MATCHES_HISTORY = "inbox_matches_history"


@dataclass(frozen=True)
class Violation:
    """One broken invariant, with the ids of the rows that break it."""

    check: Check
    ids: dict[str, Any]
    detail: str

    def as_data(self) -> dict[str, Any]:
        return {"check": self.check.value, "ids": self.ids, "detail": self.detail}


@dataclass(frozen=True)
class Verdict:
    """Every violation found, grouped by check in a fixed order."""

    violations: list[Violation] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.violations

    def counts(self) -> dict[str, int]:
        return {check.value: sum(1 for v in self.violations if v.check is check) for check in Check}


def judge(suspects: Suspects, max_outbox_age: timedelta) -> Verdict:
    """Decide which of the suspect rows break which invariant."""
    return Verdict(
        [
            *_judge_orders(suspects.orders),
            *_judge_history_events(suspects.history_without_one_event),
            *_judge_orphan_events(suspects.events_without_history),
            *_judge_outbox_age(suspects.stale_unpublished, max_outbox_age),
            *_judge_inbox(suspects.inbox_against_history),
            *_judge_history_without_inbox(suspects.history_without_inbox),
        ]
    )


def _judge_orders(rows: Sequence[tuple[Any, ...]]) -> list[Violation]:
    found = []
    for number, status, version, versions, last_status in rows:
        ids = {"order_number": number}
        if list(versions) != list(range(1, len(versions) + 1)):
            shown = ", ".join(str(v) for v in versions) or "none"
            found.append(
                Violation(Check.HISTORY_GAPLESS, ids, f"history versions are {shown}, not 1..n")
            )
        last_version = versions[-1] if versions else None
        if (last_status, last_version) != (status, version):
            found.append(
                Violation(
                    Check.STATUS_MATCHES_HISTORY,
                    ids,
                    f"order is {status} v{version}; its last history row is "
                    + (f"{last_status} v{last_version}" if versions else "missing"),
                )
            )
    return found


def _judge_history_events(rows: Sequence[tuple[Any, ...]]) -> list[Violation]:
    return [
        Violation(
            Check.ONE_EVENT_PER_CHANGE,
            {
                "history_id": history_id,
                "order_number": number,
                "version": version,
                "command_id": command_id,
                "event_ids": list(event_ids),
            },
            f"history row has {len(event_ids)} events in the outbox, not 1",
        )
        for history_id, number, version, command_id, event_ids in rows
        if len(event_ids) != 1
    ]


def _judge_orphan_events(rows: Sequence[tuple[Any, ...]]) -> list[Violation]:
    return [
        Violation(
            Check.ONE_EVENT_PER_CHANGE,
            {
                "outbox_id": outbox_id,
                "event_id": event_id,
                "order_number": number,
                "command_id": command_id,
            },
            f"{message_type} event has no history row",
        )
        for outbox_id, event_id, number, command_id, message_type in rows
    ]


def _judge_outbox_age(
    rows: Sequence[tuple[Any, ...]], max_outbox_age: timedelta
) -> list[Violation]:
    limit = max_outbox_age.total_seconds()
    return [
        Violation(
            Check.OUTBOX_DRAINED,
            {"outbox_id": outbox_id, "event_id": event_id, "order_number": number},
            f"{message_type} event unpublished for {age:.0f}s (limit {limit:g}s)",
        )
        for outbox_id, event_id, number, message_type, age in rows
        if age > limit
    ]


def _judge_inbox(rows: Sequence[tuple[Any, ...]]) -> list[Violation]:
    found = []
    for command_id, number, outcome, history_rows in rows:
        if history_rows == (1 if outcome == "applied" else 0):
            continue
        want = "1 history row" if outcome == "applied" else "no history row"
        found.append(
            Violation(
                Check.INBOX_MATCHES_HISTORY,
                {"command_id": command_id, "order_number": number},
                f"command {outcome} has {history_rows} history rows, not {want}",
            )
        )
    return found


def _judge_history_without_inbox(rows: Sequence[tuple[Any, ...]]) -> list[Violation]:
    return [
        Violation(
            Check.INBOX_MATCHES_HISTORY,
            {"history_id": history_id, "order_number": number, "command_id": command_id},
            f"history row v{version} has no inbox entry for its command",
        )
        for history_id, number, version, command_id in rows
    ]
