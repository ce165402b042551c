"""The dead-letter services against in-memory fakes of the store, the reads and the publisher."""

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from contracts import Command
from tests.support.commands import change_status, create_order, order_number
from tests.support.dead_letter_fakes import (
    NOW,
    FakeClock,
    FakeCurrentState,
    FakeDeadLetterStore,
    StubReplayPublisher,
    stored_entry,
)
from worker.dead_letter_views import DeadLetterDetail
from worker.errors import Unavailable
from worker.messaging.replay import REPLAYED_FROM_HEADER
from worker.messaging.topology import Topology
from worker.services.dead_letter_replay import (
    ReplayOutcome,
    ReplayParts,
    ReplayReport,
    ReplayRequest,
    replay_dead_letters,
)
from worker.services.dead_letters import (
    DeadLetterFilter,
    PurgeRequest,
    UnknownReason,
    dead_letter_groups,
    known_reasons,
    list_dead_letters,
    purge_dead_letters,
    show_dead_letter,
)

TOPOLOGY = Topology("orders")


def command_entry(entry_id: int, command: Command, **fields: Any) -> DeadLetterDetail:
    routing_key = "order.create" if type(command).__name__ == "CreateOrder" else None
    return stored_entry(
        entry_id,
        command.model_dump_json().encode(),
        order_number=command.order_number,
        **({"routing_key": routing_key} if routing_key else {}),
        **fields,
    )


class Harness:
    """The services' parts, all fakes, and a way to run a replay."""

    def __init__(self, *entries: DeadLetterDetail) -> None:
        self.store = FakeDeadLetterStore(list(entries))
        self.reads = FakeCurrentState()
        self.publisher = StubReplayPublisher()
        self.clock = FakeClock()
        self.progress: list[tuple[int, int]] = []

    def replay(self, **request: Any) -> ReplayReport:
        parts = ReplayParts(
            store=self.store,
            reads=self.reads,
            topology=TOPOLOGY,
            publishing=self.publisher.session,
            clock=self.clock,
            sleep=self.clock.sleep,
        )
        wanted = ReplayRequest(actor="ops-alice", **request)
        return replay_dead_letters(
            parts, wanted, progress=lambda done, total: self.progress.append((done, total))
        )

    def outcome(self, report: ReplayReport, entry_id: int) -> ReplayOutcome:
        [found] = [o for o in report.outcomes if o.id == entry_id]
        return found


# Browsing and purging


def test_list_filters_and_puts_the_most_recent_failure_first_with_its_detail() -> None:
    store = FakeDeadLetterStore(
        [
            stored_entry(1, b"{", reason="malformed_json", detail="body is not valid JSON"),
            stored_entry(2, b"[", reason="malformed_json", state="replayed"),
            stored_entry(3, b"x", reason="unknown_type"),
            stored_entry(4, b"{}", reason="malformed_json"),
        ]
    )

    found = list_dead_letters(store, DeadLetterFilter(reason="malformed_json", state="dead"))

    assert [e.id for e in found] == [1, 4]  # entry 1 failed an hour ago, entry 4 four hours
    assert found[0].detail == "body is not valid JSON"
    assert [e.id for e in list_dead_letters(store, DeadLetterFilter(limit=2))] == [1, 2]


def test_an_unknown_reason_is_refused_naming_every_known_one() -> None:
    store = FakeDeadLetterStore([stored_entry(1, b"{", reason="legacy_reason")])

    with pytest.raises(UnknownReason) as refused:
        list_dead_letters(store, DeadLetterFilter(reason="malformed"))

    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("unknown reason 'malformed'; known reasons: malformed_json, ")
    for reason in ("command_id_reused", "delivery_limit", "unknown", "legacy_reason"):
        assert reason in message
    assert known_reasons(store)[-1] == "legacy_reason"
    # A reason only the store holds, or the broker's, is a fine filter.
    assert [e.id for e in list_dead_letters(store, DeadLetterFilter(reason="legacy_reason"))] == [1]
    assert list_dead_letters(store, DeadLetterFilter(reason="delivery_limit")) == []


def test_groups_count_by_reason_and_queue_and_hide_groups_with_nothing_dead() -> None:
    store = FakeDeadLetterStore(
        [
            stored_entry(1, b"{", reason="malformed_json"),
            stored_entry(2, b"{", reason="malformed_json"),
            stored_entry(3, b"{", reason="unknown_type", state="replayed"),
        ]
    )

    assert [(g.reason, g.dead) for g in dead_letter_groups(store)] == [("malformed_json", 2)]
    everything = dead_letter_groups(store, everything=True)
    assert [(g.reason, g.dead, g.replayed) for g in everything] == [
        ("malformed_json", 2, 0),
        ("unknown_type", 0, 1),
    ]


def test_purging_marks_who_and_when_keeps_the_entries_and_names_ids_it_did_not_purge() -> None:
    store = FakeDeadLetterStore([stored_entry(1, b"{"), stored_entry(2, b"[")])

    request = PurgeRequest(ids=(1, 9), actor="ops-bob", note="test data")
    result = purge_dead_letters(store, request)

    assert (result.purged, result.not_purged) == ([1], [9])
    purged = show_dead_letter(store, 1)
    assert purged is not None
    assert (purged.state, purged.purged_by, purged.purged_at, purged.purge_note) == (
        "purged",
        "ops-bob",
        NOW,
        "test data",
    )
    assert purge_dead_letters(store, PurgeRequest(ids=(1,), actor="x")).not_purged == [1]
    older = purge_dead_letters(store, PurgeRequest(older_than=timedelta(hours=3), actor="x"))
    assert older.purged == []  # entry 2 failed two hours ago
    assert len(store.entries) == 2


def test_a_purge_names_exactly_one_selector_and_someone_who_purges() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        PurgeRequest(ids=(1,), reason="malformed_json", actor="x")
    with pytest.raises(ValidationError, match="exactly one"):
        PurgeRequest(actor="x")
    with pytest.raises(ValidationError):
        PurgeRequest(ids=(1,), actor="")
    with pytest.raises(UnknownReason):
        purge_dead_letters(FakeDeadLetterStore([]), PurgeRequest(reason="nope", actor="x"))


# Replaying


def test_a_replay_publishes_to_the_queue_it_failed_in_and_marks_it_only_after_the_confirm() -> None:
    number = order_number()
    change = change_status(number, "in_progress")
    harness = Harness(command_entry(1, change))
    harness.reads.registered(create_order(number))

    report = harness.replay(ids=(1,))

    [message] = harness.publisher.published
    assert (message.queue, message.exchange) == (
        TOPOLOGY.status_worker_queue,
        "orders.retry-return",
    )
    assert message.headers[REPLAYED_FROM_HEADER] == 1
    outcome = harness.outcome(report, 1)
    assert (outcome.result, outcome.queue, outcome.routing_key) == (
        "replayed",
        TOPOLOGY.status_worker_queue,
        "order.status.change",
    )
    assert outcome.check is not None
    assert (outcome.check.decision, outcome.check.explanation) == (
        "accepted",
        "pending -> in_progress",
    )
    entry = harness.store.entries[1]
    assert (entry.state, entry.replayed_by, entry.replay_count) == ("replayed", "ops-alice", 1)
    assert harness.store.held == set()
    assert harness.publisher.closed == 1


def test_an_entry_that_would_fail_again_is_refused_unless_forced() -> None:
    number = order_number()
    original = change_status(number, "in_progress")
    reused = change_status(number, "cancelled", command_id=original.command_id)
    harness = Harness(
        stored_entry(1, b"{oops", reason="malformed_json"),
        command_entry(2, reused, reason="command_id_reused"),
    )
    harness.reads.processed_before(original)

    refused = harness.replay(all_dead=True)

    assert [o.result for o in refused.outcomes] == ["refused", "refused"]
    assert harness.publisher.published == []
    assert {e.state for e in harness.store.entries.values()} == {"dead"}
    malformed, reuse = refused.outcomes
    assert malformed.check is not None
    assert malformed.check.fails_again
    assert malformed.check.problem is not None
    assert malformed.check.problem.startswith("malformed_json")
    assert reuse.check is not None
    assert reuse.check.decision == "command_id_reused"
    assert reuse.why is not None
    assert reuse.why.startswith("it would fail again: decodes; command_id_reused")
    assert reuse.needs_force

    forced = harness.replay(all_dead=True, force=True)

    assert [o.result for o in forced.outcomes] == ["replayed", "replayed"]
    assert all(o.check is not None and o.check.fails_again for o in forced.outcomes)
    assert len(harness.publisher.published) == 2


def test_a_command_its_consumer_would_reject_is_replayed_and_says_so() -> None:
    harness = Harness(command_entry(1, change_status(order_number(), "in_progress")))

    report = harness.replay(ids=(1,))

    outcome = harness.outcome(report, 1)
    assert outcome.result == "replayed"
    assert outcome.check is not None
    assert outcome.check.rejected
    assert not outcome.check.fails_again
    assert outcome.check.explanation is not None
    assert outcome.check.explanation.startswith("unknown_order")


def test_an_entry_another_session_holds_is_skipped_and_a_purged_one_refused() -> None:
    harness = Harness(stored_entry(1, b"{}"), stored_entry(2, b"{}", state="purged"))
    harness.store.entries[2] = harness.store.entries[2].model_copy(
        update={"purged_at": NOW, "purged_by": "ops-bob"}
    )
    harness.store.held.add(1)

    report = harness.replay(ids=(1, 2, 3), force=True)

    assert [(o.id, o.result) for o in report.outcomes] == [
        (1, "skipped"),
        (2, "refused"),
        (3, "not_found"),
    ]
    assert report.outcomes[1].why is not None
    assert report.outcomes[1].why.startswith("purged 2026-11-30T12:00:00+00:00 by ops-bob")
    assert not report.outcomes[1].needs_force  # forcing does not bring a purged entry back
    assert harness.publisher.published == []


def test_an_entry_replayed_before_is_replayed_again_only_when_forced() -> None:
    number = order_number()
    harness = Harness(command_entry(1, change_status(number, "in_progress")))
    harness.reads.registered(create_order(number))
    harness.replay(ids=(1,))

    again = harness.replay(ids=(1,))
    by_reason = harness.replay(all_dead=True)
    forced = harness.replay(all_dead=True, force=True)

    assert again.outcomes[0].result == "refused"
    assert again.outcomes[0].why is not None
    assert again.outcomes[0].why.startswith("already replayed 1 time(s)")
    assert again.outcomes[0].needs_force
    assert by_reason.outcomes == []  # only dead entries, unless forced
    assert [o.result for o in forced.outcomes] == ["replayed"]
    assert harness.store.entries[1].replay_count == 2


def test_an_unconfirmed_or_refused_publish_leaves_the_entry_dead() -> None:
    harness = Harness(
        command_entry(1, change_status(order_number(), "in_progress")),
        command_entry(2, change_status(order_number(), "in_progress")),
        command_entry(3, change_status(order_number(), "in_progress")),
    )
    harness.publisher.time_out_for.add(1)
    harness.publisher.refuse_for.add(2)

    report = harness.replay(all_dead=True)

    assert [o.result for o in report.outcomes] == ["unconfirmed", "failed", "replayed"]
    assert report.outcomes[0].why is not None
    assert "running the replay again is safe" in report.outcomes[0].why
    assert [e.state for e in harness.store.entries.values()] == ["dead", "dead", "replayed"]


def test_a_broker_that_stops_taking_messages_ends_the_replay_and_says_what_went() -> None:
    class FailsOnSecond(StubReplayPublisher):
        def publish(self, message: Any) -> None:
            if self.published:
                raise Unavailable("RabbitMQ", "NOT_FOUND - no exchange")
            super().publish(message)

    harness = Harness(
        command_entry(1, change_status(order_number(), "in_progress")),
        command_entry(2, change_status(order_number(), "in_progress")),
        command_entry(3, change_status(order_number(), "in_progress")),
    )
    harness.publisher = FailsOnSecond()

    report = harness.replay(all_dead=True)

    assert [(o.id, o.result) for o in report.outcomes] == [(1, "replayed")]
    assert report.stopped is not None
    assert report.stopped.endswith("replayed so far: 1")
    assert [e.state for e in harness.store.entries.values()] == ["replayed", "dead", "dead"]


def test_a_replay_keeps_its_rate_and_reports_progress() -> None:
    harness = Harness(
        *(command_entry(i, change_status(order_number(), "in_progress")) for i in range(1, 6))
    )

    report = harness.replay(all_dead=True, rate=10)

    assert [o.result for o in report.outcomes] == ["replayed"] * 5
    assert harness.clock.now == pytest.approx(100.4)  # the fifth goes 0.4 s after the first
    assert harness.progress == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    assert harness.reads.workflow_reads == 1


def test_a_dry_run_says_what_would_happen_and_changes_nothing() -> None:
    number = order_number()
    creation = create_order(number)
    done = change_status(number, "in_progress")
    harness = Harness(
        command_entry(1, change_status(number, "completed")),
        command_entry(2, creation),
        command_entry(3, done),
        command_entry(4, change_status(number, "pending")),
        stored_entry(5, b"{", reason="malformed_json"),
        stored_entry(6, b"{}", source_queue="elsewhere"),
    )
    harness.reads.registered(creation)
    harness.reads.processed_before(done)
    before = dict(harness.store.entries)

    report = harness.replay(all_dead=True, dry_run=True)

    assert [(o.result, o.check.decision if o.check else None) for o in report.outcomes] == [
        ("would_replay", "rejected"),
        ("would_replay", "duplicate"),
        ("would_replay", "already_processed"),
        ("would_replay", "unchanged"),
        ("would_replay", None),
        ("refused", None),
    ]
    assert report.outcomes[4].check is not None
    assert report.outcomes[4].check.fails_again
    assert report.outcomes[5].why == "source queue 'elsewhere' is not a queue of this service"
    assert harness.store.entries == before
    assert harness.store.claims == []
    assert harness.publisher.opened == 0


def test_nothing_selected_opens_no_broker_connection() -> None:
    harness = Harness(stored_entry(1, b"{}", state="replayed", replay_count=1, replayed_at=NOW))

    report = harness.replay(reason="retries_exhausted")

    assert report.outcomes == []
    assert harness.publisher.opened == 0


def test_a_replay_request_names_exactly_one_selection() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        ReplayRequest(ids=(1,), all_dead=True, actor="x")
    with pytest.raises(ValidationError, match="exactly one"):
        ReplayRequest(actor="x")
    with pytest.raises(ValidationError):
        ReplayRequest(all_dead=True, rate=0, actor="x")
    with pytest.raises(UnknownReason):
        Harness().replay(reason="nope")
