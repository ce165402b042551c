"""What a command does to an order, decided without servers."""

import pytest

from contracts import RejectionReason
from tests.support.commands import change_status
from tests.support.workflow_spec import ALL_PAIRS, ALLOWED, spec_workflow
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
from worker.domain.workflow import Status, Workflow

WORKFLOW = spec_workflow()


@pytest.mark.parametrize(("from_status", "to_status"), ALL_PAIRS)
def test_every_transition_is_allowed_or_refused_as_specified(
    from_status: str, to_status: str
) -> None:
    decision = decide_status_change(
        OrderState(from_status, 4), change_status("SO-1", to_status), WORKFLOW
    )
    if from_status == to_status:
        assert decision == Unchanged(from_status)
    elif to_status in ALLOWED[from_status]:
        assert decision == Move(from_status, to_status, 5)
    else:
        assert isinstance(decision, Rejection)
        assert decision.reason == RejectionReason.INVALID_TRANSITION
        assert f"{from_status} -> {to_status} is not allowed" in decision.detail


def test_invalid_transition_names_the_allowed_moves() -> None:
    decision = decide_status_change(
        OrderState("completed", 3), change_status("SO-1", "cancelled"), WORKFLOW
    )
    assert decision == Rejection(
        RejectionReason.INVALID_TRANSITION,
        "completed -> cancelled is not allowed (allowed: in_progress)",
    )


def test_unknown_target_status_is_refused_before_looking_at_the_order() -> None:
    decision = decide_status_change(None, change_status("SO-1", "Completed"), WORKFLOW)
    assert isinstance(decision, Rejection)
    assert decision.reason == RejectionReason.UNKNOWN_STATUS
    assert "'Completed'" in decision.detail


def test_unknown_expected_status_is_refused() -> None:
    command = change_status("SO-1", "in_progress", expected_status="waiting")
    decision = decide_status_change(OrderState("pending", 1), command, WORKFLOW)
    assert isinstance(decision, Rejection)
    assert decision.reason == RejectionReason.UNKNOWN_STATUS


def test_missing_order_is_unknown_order() -> None:
    decision = decide_status_change(None, change_status("SO-404", "in_progress"), WORKFLOW)
    assert decision == Rejection(RejectionReason.UNKNOWN_ORDER, "no order with number 'SO-404'")


def test_expected_status_must_match() -> None:
    command = change_status("SO-1", "completed", expected_status="pending")
    decision = decide_status_change(OrderState("in_progress", 2), command, WORKFLOW)
    assert decision == Rejection(
        RejectionReason.VERSION_CONFLICT, "expected status pending but the order is in_progress"
    )


def test_expected_version_must_match() -> None:
    command = change_status("SO-1", "completed", expected_version=1)
    decision = decide_status_change(OrderState("in_progress", 2), command, WORKFLOW)
    assert decision == Rejection(
        RejectionReason.VERSION_CONFLICT, "expected version 1 but the order is at 2"
    )


def test_stale_expectation_wins_over_unchanged() -> None:
    """A sender that saw another version learns of the conflict even if the status matches."""
    command = change_status("SO-1", "in_progress", expected_version=7)
    decision = decide_status_change(OrderState("in_progress", 2), command, WORKFLOW)
    assert isinstance(decision, Rejection)
    assert decision.reason == RejectionReason.VERSION_CONFLICT


def test_matching_expectations_allow_the_move() -> None:
    command = change_status("SO-1", "completed", expected_status="in_progress", expected_version=2)
    decision = decide_status_change(OrderState("in_progress", 2), command, WORKFLOW)
    assert decision == Move("in_progress", "completed", 3)


def test_registration_of_a_new_order_starts_in_the_initial_status() -> None:
    assert decide_creation("SO-1", "abc", None, WORKFLOW) == Register("pending")


def test_registration_with_the_same_content_is_a_repeat() -> None:
    decision = decide_creation("SO-1", "abc", "abc", WORKFLOW)
    assert isinstance(decision, AlreadyRegistered)


def test_registration_with_other_content_is_duplicate_order() -> None:
    decision = decide_creation("SO-1", "abc", "xyz", WORKFLOW)
    assert isinstance(decision, Rejection)
    assert decision.reason == RejectionReason.DUPLICATE_ORDER


def test_a_workflow_naming_undefined_statuses_is_refused() -> None:
    with pytest.raises(ValueError, match="undefined statuses"):
        Workflow.build([Status("a", "A", "甲")], "a", [("a", "b")])
    with pytest.raises(ValueError, match="undefined statuses"):
        Workflow.build([Status("a", "A", "甲")], "z", [])


def test_next_statuses_follow_workflow_order() -> None:
    assert WORKFLOW.next_statuses("in_progress") == [
        "pending",
        "processed",
        "completed",
        "cancelled",
    ]
    assert WORKFLOW.next_statuses("completed") == ["in_progress"]
