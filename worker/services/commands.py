"""Publish a command as an upstream system would, and optionally wait for its outcome.

The inbox is read before anything is sent whenever the caller will wait or may
be reusing a command id: a database out of reach then fails the call with
nothing published, instead of leaving a command behind that the caller does not
know of and may send again. A command id the inbox holds for other content is
refused before sending, since the worker would dead-letter it as
`command_id_reused`. A command id sent again is reported as a `duplicate` of its
first outcome, once the worker has counted the new delivery.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from contracts import Command, CommandOutcome
from worker.domain.fingerprints import fingerprint
from worker.services.errors import CommandIdReused, NotFound
from worker.views import CommandRecord

ACCEPTED = "accepted"
"""The outcome of a command that was sent but not waited for, or not decided in time."""


class SeenCommand(Protocol):
    """What the inbox holds about a command id, for checking a repeat before sending it."""

    @property
    def fingerprint(self) -> str: ...

    @property
    def deliveries(self) -> int: ...


@dataclass(frozen=True)
class CommandEffects:
    """What a command changed: the order version it wrote and the event it emitted, if any."""

    version: int | None = None
    event_id: UUID | None = None


class CommandInbox(Protocol):
    """The status worker's record of every command id it has seen."""

    def seen(self, command_id: UUID) -> SeenCommand | None:
        """The fingerprint and delivery count of a processed command, or None."""

    def outcome(self, command_id: UUID) -> CommandRecord | None:
        """The recorded outcome of a command, or None if it has not been processed."""

    def effects(self, command_id: UUID) -> CommandEffects:
        """The history version and the event a processed command wrote."""


class CommandSender(Protocol):
    """Publishes a command to the commands exchange and returns once the broker confirmed it."""

    def send(self, command: Command, correlation_id: str | None) -> None: ...


@dataclass(frozen=True)
class PublishResult:
    """What became of a published command.

    `outcome` is `accepted` when the caller did not wait or no outcome came in
    time (`timed_out`), else the recorded outcome, or `duplicate` for a command
    id delivered again (its first outcome is then in `recorded_outcome`).
    `version` and `event_id` are what the command's first processing wrote.
    """

    command_id: UUID
    outcome: str
    reason: str | None = None
    detail: str | None = None
    version: int | None = None
    event_id: UUID | None = None
    recorded_outcome: CommandOutcome | None = None
    timed_out: bool = False
    record: CommandRecord | None = None

    @property
    def rejected(self) -> bool:
        """The command was refused for a business reason (now or on its first delivery)."""
        return (self.recorded_outcome or self.outcome) == CommandOutcome.REJECTED.value


def publish_command(
    command: Command,
    *,
    inbox: CommandInbox,
    sender: CommandSender,
    correlation_id: str | None = None,
    wait: bool = False,
    timeout: float = 30.0,
    id_may_be_reused: bool = True,
    poll_seconds: float = 0.05,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> PublishResult:
    """Send `command`; with `wait`, poll the inbox for its outcome up to `timeout` seconds.

    `id_may_be_reused=False` (a freshly generated id) skips the inbox check when
    not waiting. Raises CommandIdReused, with nothing sent, for an id the inbox
    holds for other content.
    """
    seen = _already_seen(inbox, command) if wait or id_may_be_reused else None
    sender.send(command, correlation_id)
    if not wait:
        return PublishResult(command.command_id, ACCEPTED)
    deliveries_before = seen.deliveries if seen else 0
    deadline = clock() + timeout
    while True:
        record = inbox.outcome(command.command_id)
        if record is not None and record.deliveries > deliveries_before:
            return _result(record, inbox.effects(command.command_id), repeated=seen is not None)
        if clock() >= deadline:
            return PublishResult(command.command_id, ACCEPTED, timed_out=True)
        sleep(poll_seconds)


def command_outcome(inbox: CommandInbox, command_id: UUID) -> CommandRecord:
    """What became of a command, from the inbox; NotFound if it has not been processed (yet)."""
    record = inbox.outcome(command_id)
    if record is None:
        raise NotFound(f"no command {command_id} has been processed")
    return record


def _already_seen(inbox: CommandInbox, command: Command) -> SeenCommand | None:
    seen = inbox.seen(command.command_id)
    if seen is not None and seen.fingerprint != fingerprint(command):
        raise CommandIdReused(
            f"command id {command.command_id} was already used for a command with other "
            "content; the worker would dead-letter this one as command_id_reused. "
            "Use a new command id."
        )
    return seen


def _result(record: CommandRecord, effects: CommandEffects, *, repeated: bool) -> PublishResult:
    return PublishResult(
        command_id=record.command_id,
        outcome=CommandOutcome.DUPLICATE.value if repeated else record.outcome.value,
        reason=record.reason,
        detail=record.detail,
        version=effects.version,
        event_id=effects.event_id,
        recorded_outcome=record.outcome if repeated else None,
        record=record,
    )
