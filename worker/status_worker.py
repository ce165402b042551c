"""The status worker: apply each batch of order commands to PostgreSQL in one transaction.

Its handler decodes the batch (poison is set aside with its reason) and applies
the commands through the kernel's attempt runner: an outage is waited out
holding the batch, contention is retried and then sent to a retry tier, and a
batch that fails for one command's sake is split until that command alone is
dead-lettered. The kernel (`worker.kernel.consumer`) routes the failures,
waits for their confirms and only then acks the batch; the inbox turns any
command delivered again after a crash into a duplicate that changes nothing.
"""

import logging
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from worker.config import Settings
from worker.crashpoints import AFTER_COMMIT_BEFORE_ACK, AFTER_DEAD_LETTER_COPY_BEFORE_ACK
from worker.db.apply import DatabaseCommandStore
from worker.db.connection import Database
from worker.db.workflow_store import WorkflowCache
from worker.domain.incoming import IncomingCommand
from worker.domain.outcomes import ApplyResult
from worker.kernel.attempts import AttemptRunner, as_dispositions
from worker.kernel.consumer import Consumer
from worker.kernel.delivery import Delivery
from worker.kernel.dispositions import DeadLetterReason, Disposition, Done, Poison
from worker.kernel.ports import Keepalive
from worker.messaging.decoding import decode_command
from worker.wiring import WorkerParts

log = logging.getLogger(__name__)

ROLE = "status-worker"


class CommandStore(Protocol):
    """Where commands are applied: PostgreSQL, or a fake in unit tests."""

    def check(self) -> None:
        """Raise unless commands can be applied (the database reachable and migrated)."""

    def apply(self, commands: Sequence[IncomingCommand]) -> Sequence[ApplyResult]:
        """Apply `commands` in one transaction, in order; one result each."""

    def close(self) -> None: ...


class ApplyCommands:
    """The status worker's handler: one transaction per batch, one disposition per delivery."""

    def __init__(self, store: CommandStore, attempts: AttemptRunner) -> None:
        self._store = store
        self._attempts = attempts

    def prepare(self) -> None:
        self._store.check()

    def handle(self, batch: Sequence[Delivery], keepalive: Keepalive) -> list[Disposition]:
        decoded = [decode_command(delivery.envelope()) for delivery in batch]
        delivery_of = {id(item): delivery for item, delivery in zip(decoded, batch, strict=True)}
        commands = [item for item in decoded if isinstance(item, IncomingCommand)]
        results = self._attempts.run(
            commands,
            self._store.apply,
            key=lambda incoming: incoming.command.order_number,
            keepalive=keepalive,
        )
        applied = iter(as_dispositions(results, lambda item: delivery_of[id(item)], _disposition))
        dispositions = [item if isinstance(item, Poison) else next(applied) for item in decoded]
        # Logged once committed, so a lost ack still leaves a trace of what took effect.
        for delivery, disposition in zip(batch, dispositions, strict=True):
            if isinstance(disposition, Done):
                _log_outcome(delivery, disposition.result)
        return dispositions

    def between_batches(self, keepalive: Keepalive) -> None:
        """Nothing periodic: the status worker only reacts to commands."""

    def close(self) -> None:
        self._store.close()


def _disposition(result: Any) -> Disposition:
    if isinstance(result, ApplyResult) and result.content_conflict:
        return Poison(
            DeadLetterReason.COMMAND_ID_REUSED,
            f"command id {result.command_id} was already used for a command with other content "
            f"(recorded outcome: {result.outcome.value})",
        )
    return Done(result)


def _log_outcome(delivery: Delivery, result: ApplyResult) -> None:
    context = {
        **delivery.log_context(),
        "command_id": str(result.command_id),
        "order_number": result.order_number,
        "outcome": result.outcome.value,
        "reason": result.reason.value if result.reason else None,
        "already_processed": result.redelivered,
        "broker_redelivered": delivery.redelivered,
    }
    if result.redelivered:
        log.info("command already processed; nothing changed", extra=context)
    elif result.outcome == "applied":
        log.debug("command applied", extra=context)
    else:
        log.info("command %s", result.outcome.value, extra=context)


def build(settings: Settings, stop: threading.Event) -> Consumer:
    """The status worker, wired: its handler on the kernel's consumer."""
    parts = WorkerParts.of(ROLE, settings, stop)
    store = DatabaseCommandStore(
        Database(settings, ROLE), WorkflowCache(settings.workflow_refresh_seconds)
    )
    return parts.consumer(
        ApplyCommands(store, parts.attempts()),
        [parts.topology.status_worker()],
        batch_size=settings.batch_size,
        batch_wait_seconds=settings.batch_wait_ms / 1000,
        prefetch=settings.prefetch_count,
        crash_before_ack=AFTER_COMMIT_BEFORE_ACK,
        crash_after_dead_letter_copy=AFTER_DEAD_LETTER_COPY_BEFORE_ACK,
    )
