"""In-memory stand-ins for the dead-letter services' store, reads and publisher.

Each has the interface of the real adapter (`PostgresDeadLetterStore`,
`PostgresCurrentState`, `BrokerReplayPublisher`), so the services run against
them unchanged, in milliseconds.
"""

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from contracts import Command
from tests.support.workflow_spec import spec_workflow
from worker.db.dead_letters import Selection
from worker.dead_letter_views import DeadLetterDetail, DeadLetterGroup, DeadLetterSummary
from worker.domain.decisions import OrderState
from worker.domain.fingerprints import creation_fingerprint, fingerprint
from worker.domain.workflow import Workflow
from worker.messaging.publisher import ConfirmTimeout, MessagesRefused
from worker.messaging.replay import Replay

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def stored_entry(entry_id: int, body: bytes, **fields: Any) -> DeadLetterDetail:
    """A dead-letter entry as the store would hold it, with sensible defaults."""
    try:
        text: str | None = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    values: dict[str, Any] = {
        "id": entry_id,
        "reason": "retries_exhausted",
        "detail": "the order row stayed locked",
        "source_queue": "orders.status-worker",
        "routing_key": "order.status.change",
        "message_id": f"m-{entry_id}",
        "order_number": None,
        "attempts": 5,
        "first_failed_at": NOW - timedelta(hours=entry_id),
        "last_failed_at": NOW - timedelta(hours=entry_id),
        "state": "dead",
        "exchange": "orders.commands",
        "correlation_id": None,
        "message_type": None,
        "properties": {"content_type": "application/json"},
        "headers": {},
        "body_base64": base64.b64encode(body).decode("ascii"),
        "body_text": text,
        "ingested_at": NOW,
        "replay_count": 0,
        "replayed_at": None,
        "replayed_by": None,
        "purged_at": None,
        "purged_by": None,
        "purge_note": None,
        "replayed_from": None,
    }
    values.update(fields)
    return DeadLetterDetail(**values)


class FakeDeadLetterStore:
    """The store as a dict of entries; `held` ids stand for rows another session has locked."""

    def __init__(self, entries: list[DeadLetterDetail], clock: datetime = NOW) -> None:
        self.entries = {entry.id: entry for entry in entries}
        self.held: set[int] = set()
        self.claims: list[int] = []
        self.now = clock

    def _matching(self, selection: Selection) -> list[DeadLetterDetail]:
        def matches(e: DeadLetterDetail) -> bool:
            return all(
                (
                    selection.reason is None or e.reason == selection.reason,
                    selection.queue is None or e.source_queue == selection.queue,
                    selection.order_number is None or e.order_number == selection.order_number,
                    selection.since is None or e.last_failed_at >= selection.since,
                    selection.until is None or e.last_failed_at <= selection.until,
                    selection.states is None or e.state in selection.states,
                    selection.ids is None or e.id in selection.ids,
                )
            )

        return [e for _, e in sorted(self.entries.items()) if matches(e)]

    def groups(self, *, everything: bool) -> list[DeadLetterGroup]:
        keys = sorted({(e.reason, e.source_queue or "") for e in self.entries.values()})
        found = []
        for reason, queue in keys:
            members = [
                e
                for e in self.entries.values()
                if (e.reason, e.source_queue or "") == (reason, queue)
            ]
            dead = [e for e in members if e.state == "dead"]
            if not dead and not everything:
                continue
            found.append(
                DeadLetterGroup(
                    reason=reason,
                    source_queue=queue or None,
                    dead=len(dead),
                    replayed=sum(e.state == "replayed" for e in members),
                    purged=sum(e.state == "purged" for e in members),
                    oldest=min(e.first_failed_at for e in dead or members),
                    newest=max(e.last_failed_at for e in dead or members),
                )
            )
        return sorted(found, key=lambda g: (-g.dead, g.reason, g.source_queue or ""))

    def summaries(self, selection: Selection) -> list[DeadLetterSummary]:
        found = sorted(self._matching(selection), key=lambda e: (e.last_failed_at, e.id))[::-1]
        fields = DeadLetterSummary.model_fields
        return [
            DeadLetterSummary(**{name: getattr(e, name) for name in fields})
            for e in found[: selection.limit]
        ]

    def each_detail(self, selection: Selection) -> Iterator[DeadLetterDetail]:
        yield from self._matching(selection)

    def stored_reasons(self) -> list[str]:
        return sorted({e.reason for e in self.entries.values()})

    def get(self, entry_id: int) -> DeadLetterDetail | None:
        return self.entries.get(entry_id)

    def ids(self, selection: Selection) -> list[int]:
        return [e.id for e in self._matching(selection)][: selection.limit]

    @contextmanager
    def claimed(self, entry_id: int) -> Iterator[DeadLetterDetail | None]:
        if entry_id in self.held:
            yield None
            return
        self.claims.append(entry_id)
        self.held.add(entry_id)
        try:
            yield self.entries.get(entry_id)
        finally:
            self.held.discard(entry_id)

    def mark_replayed(self, entry_id: int, actor: str) -> bool:
        entry = self.entries[entry_id]
        if entry.state == "purged":
            return False
        self.entries[entry_id] = entry.model_copy(
            update={
                "state": "replayed",
                "replayed_at": self.now,
                "replayed_by": actor,
                "replay_count": entry.replay_count + 1,
            }
        )
        return True

    def purge(
        self, selection: Selection, actor: str, older_than: timedelta | None, note: str | None
    ) -> list[int]:
        purged = []
        for entry in self._matching(selection):
            if entry.state == "purged":
                continue
            if older_than is not None and entry.last_failed_at >= self.now - older_than:
                continue
            self.entries[entry.id] = entry.model_copy(
                update={
                    "state": "purged",
                    "purged_at": self.now,
                    "purged_by": actor,
                    "purge_note": note,
                }
            )
            purged.append(entry.id)
        return purged


class FakeCurrentState:
    """The inbox, the orders and the workflow as plain dicts."""

    def __init__(self) -> None:
        self.processed: dict[UUID, str] = {}
        self.orders: dict[str, OrderState] = {}
        self.registrations: dict[str, str] = {}
        self.workflow_reads = 0

    def processed_before(self, command: Command) -> None:
        self.processed[command.command_id] = fingerprint(command)

    def registered(self, command: Any, status: str = "pending") -> None:
        self.orders[command.order_number] = OrderState(status, 1)
        self.registrations[command.order_number] = creation_fingerprint(command)

    def workflow(self) -> Workflow:
        self.workflow_reads += 1
        return spec_workflow()

    def processed_fingerprint(self, command_id: UUID) -> str | None:
        return self.processed.get(command_id)

    def order_state(self, order_number: str) -> OrderState | None:
        return self.orders.get(order_number)

    def registration(self, order_number: str) -> str | None:
        return self.registrations.get(order_number)


class StubReplayPublisher:
    """Takes every replay at once, except those told to time out or be refused."""

    def __init__(self) -> None:
        self.published: list[Replay] = []
        self.time_out_for: set[int] = set()
        self.refuse_for: set[int] = set()
        self.opened = 0
        self.closed = 0

    def publish(self, message: Replay) -> None:
        entry_id = message.headers["x-replayed-from"]
        if entry_id in self.time_out_for:
            raise ConfirmTimeout("1 messages unconfirmed after 30.0s")
        if entry_id in self.refuse_for:
            raise MessagesRefused("the broker refused messages [1]")
        self.published.append(message)

    @contextmanager
    def session(self) -> Iterator["StubReplayPublisher"]:
        self.opened += 1
        try:
            yield self
        finally:
            self.closed += 1


class FakeClock:
    """A monotonic clock that only moves when slept on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
