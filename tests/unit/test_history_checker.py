"""The fault suite's history checker, on small histories made by hand: it must be able to fail."""

from collections import Counter
from dataclasses import replace
from uuid import uuid4

from contracts import Command
from tests.support.commands import change_status, create_order
from tests.support.history import (
    Confirmed,
    HistoryRow,
    Observed,
    OutboxRow,
    check_history,
)
from tests.support.workflow_spec import spec_workflow

WORKFLOW = spec_workflow()
NUMBER = "SO-HIST-1"


def _clean_run() -> tuple[list[Confirmed], Observed]:
    """Register an order, move it twice, one move refused: everything as it should be."""
    create = create_order(NUMBER)
    start = change_status(NUMBER, "in_progress")
    refused = change_status(NUMBER, "pending_review")  # in_progress -> pending_review: invalid
    finish = change_status(NUMBER, "completed")
    sent: list[Command] = [create, start, refused, finish]
    confirmed = [Confirmed(i, c) for i, c in enumerate(sent)]
    changes: list[tuple[Command, int, str]] = [
        (create, 1, "pending"),
        (start, 2, "in_progress"),
        (finish, 3, "completed"),
    ]
    history = [HistoryRow(NUMBER, v, to, str(c.command_id)) for c, v, to in changes]
    outbox = [
        OutboxRow(str(uuid4()), str(c.command_id), "OrderStatusChanged", published=True)
        for c, _, _ in changes
    ]
    rejection = OutboxRow(str(uuid4()), str(refused.command_id), "OrderStatusChangeRejected", True)
    observed = Observed(
        outcomes={
            str(create.command_id): "applied",
            str(start.command_id): "applied",
            str(refused.command_id): "rejected",
            str(finish.command_id): "applied",
        },
        dead_lettered=Counter(),
        history=history,
        outbox=[*outbox, rejection],
        orders={NUMBER: ("completed", 3)},
        received_event_ids=[row.event_id for row in [*outbox, rejection]],
    )
    return confirmed, observed


def test_a_clean_run_has_every_bad_count_at_zero() -> None:
    confirmed, observed = _clean_run()
    report = check_history(confirmed, observed, WORKFLOW)
    assert report.clean, report.describe()
    assert report.counts() == {
        "confirmed": 4,
        "applied": 3,
        "lost": 0,
        "doubled": 0,
        "wrong_final_state": 0,
        "missing_events": 0,
        "unexpected_events": 0,
        "repeated_deliveries": 0,
    }


def test_a_command_with_no_outcome_and_no_dead_letter_is_lost() -> None:
    confirmed, observed = _clean_run()
    refused_id = str(confirmed[2].command.command_id)
    outcomes = {k: v for k, v in observed.outcomes.items() if k != refused_id}
    report = check_history(confirmed, replace(observed, outcomes=outcomes), WORKFLOW)
    assert report.lost == [refused_id]
    assert not report.clean


def test_a_dead_lettered_command_is_not_lost() -> None:
    confirmed, observed = _clean_run()
    refused_id = str(confirmed[2].command.command_id)
    outcomes = {k: v for k, v in observed.outcomes.items() if k != refused_id}
    dead = Counter({refused_id: 1})
    report = check_history(
        confirmed, replace(observed, outcomes=outcomes, dead_lettered=dead), WORKFLOW
    )
    assert report.lost == []


def test_a_second_history_row_for_one_command_is_doubled() -> None:
    confirmed, observed = _clean_run()
    again = replace(observed.history[1], version=4)
    report = check_history(
        confirmed, replace(observed, history=[*observed.history, again]), WORKFLOW
    )
    assert len(report.doubled) == 1
    assert "2 history rows" in report.doubled[0]


def test_a_gap_in_the_versions_is_doubled() -> None:
    confirmed, observed = _clean_run()
    gap = [observed.history[0], observed.history[2]]
    report = check_history(confirmed, replace(observed, history=gap), WORKFLOW)
    assert report.doubled == [f"order {NUMBER}: versions [1, 3]"]


def test_two_dead_letter_entries_for_one_message_are_doubled() -> None:
    confirmed, observed = _clean_run()
    report = check_history(
        confirmed, replace(observed, dead_lettered=Counter({"poison-1": 2})), WORKFLOW
    )
    assert report.doubled == ["message poison-1: 2 dead-letter entries"]


def test_an_order_at_another_status_than_its_commands_give_is_wrong() -> None:
    confirmed, observed = _clean_run()
    report = check_history(
        confirmed, replace(observed, orders={NUMBER: ("in_progress", 2)}), WORKFLOW
    )
    assert len(report.wrong_final_state) == 1
    assert "expected ('completed', 3)" in report.wrong_final_state[0]


def test_the_commands_are_applied_in_confirm_order_not_list_order() -> None:
    confirmed, observed = _clean_run()
    # Confirmed as create, finish, review, start: the finish is refused (pending -> completed),
    # the review applies, the start ends it at in_progress, version 3.
    shuffled = [
        replace(confirmed[3], position=1),
        replace(confirmed[1], position=3),
        *confirmed[::2],
    ]
    report = check_history(shuffled, observed, WORKFLOW)
    assert report.wrong_final_state == [
        f"{NUMBER} (expected ('in_progress', 3), found ('completed', 3))"
    ]


def test_a_repeated_command_id_changes_nothing_in_the_expectation() -> None:
    confirmed, observed = _clean_run()
    again = Confirmed(9, confirmed[1].command)  # in_progress once more, after completed
    report = check_history([*confirmed, again], observed, WORKFLOW)
    assert report.clean, report.describe()


def test_a_history_row_without_its_published_received_event_is_missing() -> None:
    confirmed, observed = _clean_run()
    unpublished = [replace(observed.outbox[0], published=False), *observed.outbox[1:]]
    not_received = observed.received_event_ids[1:]
    assert (
        len(
            check_history(confirmed, replace(observed, outbox=unpublished), WORKFLOW).missing_events
        )
        == 1
    )
    report = check_history(confirmed, replace(observed, received_event_ids=not_received), WORKFLOW)
    assert report.missing_events == [
        f"{NUMBER} v1: event {observed.outbox[0].event_id} not received"
    ]
    two_events = [*observed.outbox, replace(observed.outbox[0], event_id=str(uuid4()))]
    report = check_history(confirmed, replace(observed, outbox=two_events), WORKFLOW)
    assert report.missing_events == [f"{NUMBER} v1: 2 outbox events"]


def test_an_event_id_with_no_outbox_row_is_unexpected() -> None:
    confirmed, observed = _clean_run()
    stranger = str(uuid4())
    received = [*observed.received_event_ids, stranger]
    report = check_history(confirmed, replace(observed, received_event_ids=received), WORKFLOW)
    assert report.unexpected_events == [stranger]


def test_repeated_deliveries_are_counted_and_allowed() -> None:
    confirmed, observed = _clean_run()
    received = [*observed.received_event_ids, *observed.received_event_ids[:2]]
    report = check_history(confirmed, replace(observed, received_event_ids=received), WORKFLOW)
    assert report.repeated_deliveries == 2
    assert report.clean
