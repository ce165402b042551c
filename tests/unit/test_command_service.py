"""Publishing a command and waiting for its outcome, against fakes of the inbox and broker."""

from uuid import uuid4

import pytest

from contracts import Command, CommandOutcome
from tests.support.commands import change_status, create_order
from tests.unit.fakes import FakeInbox, FakeSender
from worker.errors import Unavailable
from worker.services.commands import ACCEPTED, CommandEffects, command_outcome, publish_command
from worker.services.errors import CommandIdReused, NotFound


def worker_that(inbox: FakeInbox, outcome: CommandOutcome, reason: str | None = None) -> FakeSender:
    """A broker whose status worker records `outcome` for every command it receives."""
    effects = CommandEffects(version=2, event_id=uuid4()) if reason is None else CommandEffects()
    return FakeSender(lambda command: inbox.record(command, outcome, reason, effects))


def test_without_waiting_a_fresh_command_is_sent_and_accepted_without_the_database() -> None:
    inbox = FakeInbox(reachable=False)
    sender = FakeSender()
    command = create_order()

    result = publish_command(
        command, inbox=inbox, sender=sender, correlation_id="crm-1", id_may_be_reused=False
    )

    assert (result.command_id, result.outcome) == (command.command_id, ACCEPTED)
    assert sender.sent == [(command, "crm-1")]
    assert inbox.reads == 0


def test_waiting_returns_the_recorded_outcome_with_version_and_event() -> None:
    inbox = FakeInbox()
    command = change_status("SO-1", "in_progress")

    result = publish_command(
        command, inbox=inbox, sender=worker_that(inbox, CommandOutcome.APPLIED), wait=True
    )

    assert result.outcome == "applied"
    assert result.version == 2
    assert result.event_id == inbox.effects_of[command.command_id].event_id
    assert not result.rejected
    assert result.recorded_outcome is None


def test_a_rejection_carries_its_reason_and_detail() -> None:
    inbox = FakeInbox()
    sender = worker_that(inbox, CommandOutcome.REJECTED, "invalid_transition")

    result = publish_command(change_status("SO-1", "x"), inbox=inbox, sender=sender, wait=True)

    assert (result.outcome, result.reason) == ("rejected", "invalid_transition")
    assert result.detail == "because invalid_transition"
    assert result.rejected
    assert result.version is None


def test_a_repeated_command_id_waits_for_the_new_delivery_and_is_a_duplicate() -> None:
    inbox = FakeInbox()
    command = change_status("SO-1", "x")
    inbox.record(command, CommandOutcome.REJECTED, "invalid_transition")

    result = publish_command(
        command,
        inbox=inbox,
        sender=worker_that(inbox, CommandOutcome.REJECTED, "invalid_transition"),
        wait=True,
    )

    assert result.outcome == "duplicate"
    assert result.recorded_outcome == CommandOutcome.REJECTED
    assert result.rejected, "the exit code follows the recorded outcome"
    assert result.record is not None
    assert result.record.deliveries == 2


def test_a_command_id_used_for_other_content_is_refused_before_sending() -> None:
    inbox = FakeInbox()
    first = change_status("SO-1", "in_progress")
    inbox.record(first, CommandOutcome.APPLIED)
    other: Command = first.model_copy(update={"to_status": "cancelled"})
    sender = FakeSender()

    for wait in (False, True):
        with pytest.raises(CommandIdReused, match=str(first.command_id)):
            publish_command(other, inbox=inbox, sender=sender, wait=wait)

    assert sender.sent == []


def test_a_database_out_of_reach_fails_a_wait_with_nothing_sent() -> None:
    sender = FakeSender()
    with pytest.raises(Unavailable):
        publish_command(create_order(), inbox=FakeInbox(reachable=False), sender=sender, wait=True)
    assert sender.sent == []


def test_no_outcome_in_time_is_accepted_and_timed_out() -> None:
    inbox = FakeInbox()
    ticks = iter(range(100))

    result = publish_command(
        create_order(),
        inbox=inbox,
        sender=FakeSender(),
        wait=True,
        timeout=3,
        clock=lambda: float(next(ticks)),
        sleep=lambda _seconds: None,
    )

    assert (result.outcome, result.timed_out) == (ACCEPTED, True)
    assert inbox.reads == 1 + 3, "one check before sending, then a poll a tick to the deadline"


def test_a_command_outcome_is_read_from_the_inbox_or_not_found() -> None:
    inbox = FakeInbox()
    command = create_order()
    with pytest.raises(NotFound):
        command_outcome(inbox, command.command_id)
    inbox.record(command, CommandOutcome.APPLIED)
    assert command_outcome(inbox, command.command_id).outcome == CommandOutcome.APPLIED
