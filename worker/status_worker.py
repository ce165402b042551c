"""The status worker: consume commands in batches, apply each batch, ack after commit.

Per batch: decode every message (poison is set aside with its reason), apply
the commands in one transaction, copy the poison to the dead-letter exchange
and wait for the broker's confirm, and only then ack the whole batch with one
multiple ack. A crash anywhere before that ack redelivers the batch, and the
inbox turns every command that was already applied into a duplicate.
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kombu

from worker.config import Settings
from worker.crashpoints import (
    AFTER_COMMIT_BEFORE_ACK,
    AFTER_DEAD_LETTER_COPY_BEFORE_ACK,
    crash_point,
)
from worker.db.apply import apply_commands
from worker.db.connection import Database
from worker.db.errors import ContentionPersists, is_contention, is_transient_database_error
from worker.db.workflow_store import WorkflowCache
from worker.domain.incoming import IncomingCommand
from worker.domain.outcomes import ApplyResult
from worker.messaging.broker import collect_batch, connect_declared, envelope_of, serve
from worker.messaging.decoding import decode_command
from worker.messaging.poison import DeadLetterReason, Poison
from worker.messaging.publisher import ConfirmedPublisher
from worker.messaging.retry import FailureRouter, RetryLater, attempts_of
from worker.messaging.topology import Topology
from worker.resilience import retry_until_stopped, run_sessions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeldBack:
    """A command kept from overtaking `behind`, an earlier command for its order that waits."""

    behind: IncomingCommand
    detail: str


Disposition = ApplyResult | Poison | RetryLater | HeldBack


class StatusWorker:
    """Applies order commands from the status-worker queue to PostgreSQL."""

    role = "status-worker"

    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        self._settings = settings
        self._stop = stop
        self._topology = Topology.for_settings(settings)
        self._database = Database(settings, self.role)
        self._workflows = WorkflowCache(settings.workflow_refresh_seconds)
        self._failures = FailureRouter(self._topology, self._topology.status_worker_queue)

    def run(self) -> None:
        """Consume until `stop` is set, reconnecting to either server after a failure."""
        log.info("status worker starting", extra={"queue": self._topology.status_worker_queue})
        try:
            run_sessions(
                self._stop, self._consume_until_stopped, self._settings.reconnect_max_seconds, log
            )
        finally:
            self._database.close()
            log.info("status worker stopped")

    def _connect(self) -> Any:
        # Reading the workflow first proves the database is reachable and migrated.
        self._workflows.current(self._database.connection())
        return connect_declared(self._settings, self.role, self._topology)

    def _consume_until_stopped(self) -> None:
        connection = self._connect()
        try:
            channel = connection.channel()
            channel.auto_decode = False  # keep bodies as the bytes that were sent
            channel.basic_qos(0, self._settings.prefetch_count, False)
            publisher = ConfirmedPublisher(connection)
            buffer: list[Any] = []
            consumer = kombu.Consumer(
                channel,
                queues=[self._topology.status_worker()],
                on_message=buffer.append,
                auto_declare=False,
                no_ack=False,
            )
            # Never cancelled, only closed with the connection: a quorum queue puts the
            # deliveries in flight at a cancel behind later messages (RabbitMQ 3.10), so a
            # later command of an order would overtake an earlier one; a closed connection
            # returns every unacked message in its place.
            consumer.consume()
            log.info("consuming", extra={"queue": self._topology.status_worker_queue})
            while not self._stop.is_set():
                batch = collect_batch(
                    connection,
                    buffer,
                    self._stop,
                    self._settings.batch_size,
                    self._settings.batch_wait_ms / 1000,
                )
                if batch:
                    self._handle(batch, publisher, keepalive=lambda: serve(connection))
                connection.heartbeat_check()
        finally:
            connection.release()

    def _handle(
        self, batch: list[Any], publisher: ConfirmedPublisher, keepalive: Callable[[], None]
    ) -> None:
        decoded = [decode_command(envelope_of(message)) for message in batch]
        commands = [item for item in decoded if isinstance(item, IncomingCommand)]
        applied = iter(self._apply(commands, keepalive))
        dispositions: list[Disposition] = [
            item if isinstance(item, Poison) else _as_disposition(next(applied)) for item in decoded
        ]
        # Logged once committed, so a lost ack still leaves a trace of what took effect.
        for message, disposition in zip(batch, dispositions, strict=True):
            _log_disposition(message, disposition)
        message_of = {id(item): message for item, message in zip(decoded, batch, strict=True)}
        for message, disposition in zip(batch, dispositions, strict=True):
            failure = disposition
            if isinstance(disposition, HeldBack):
                # The same count as the command it follows: the same tier or a later one,
                # or dead letters with it; published after it, so it comes back after it.
                behind = attempts_of(message_of[id(disposition.behind)], self._topology)
                failure = RetryLater("held_back", disposition.detail, behind)
            if isinstance(failure, Poison | RetryLater):
                self._failures.route(publisher, message, failure)
        publisher.confirm_all()
        poisoned = any(isinstance(item, Poison) for item in dispositions)
        crash_point(AFTER_DEAD_LETTER_COPY_BEFORE_ACK if poisoned else AFTER_COMMIT_BEFORE_ACK)
        # Everything is committed, waiting in a retry tier or dead-lettered: one ack covers it.
        batch[-1].ack(multiple=True)

    def _apply(
        self,
        commands: list[IncomingCommand],
        keepalive: Callable[[], None],
        contention_retries: int | None = None,
    ) -> list[Disposition]:
        """Apply in one transaction; if the batch fails for good, isolate the culprit.

        Faults of the database's surroundings are retried here, holding the
        messages, rather than by redelivery: an outage must neither use up the
        queue's delivery limit nor dead-letter valid commands. Contention on the
        batch's rows is retried here `contention_retries` times; then the
        commands that still meet it wait in the retry tiers.
        """
        if not commands:
            return []
        contention_left = (
            self._settings.contention_retries if contention_retries is None else contention_retries
        )
        retrying = retry_until_stopped(
            self._stop,
            is_transient_database_error,
            self._settings.reconnect_max_seconds,
            log,
            keepalive=keepalive,
        )

        def attempt() -> list[ApplyResult]:
            connection = self._database.connection()
            workflow = self._workflows.current(connection)
            try:
                return apply_commands(connection, workflow, commands)
            except Exception as error:
                nonlocal contention_left
                if is_contention(error):
                    if contention_left <= 0:
                        raise ContentionPersists(error) from error
                    contention_left -= 1
                    raise
                if is_transient_database_error(error):
                    self._database.close()  # a fresh session next time, e.g. after a failover
                    raise
                raise CommandFault(error) from error

        try:
            return list(retrying(attempt))
        except CommandFault:
            # A status retired since the workflow was read fails a foreign key;
            # decided with the current workflow, it is a business rejection instead.
            self._workflows.expire()
        except ContentionPersists as persisting:
            return self._defer(commands, persisting.error, keepalive)
        try:
            return list(retrying(attempt))
        except CommandFault as fault:
            return self._isolate(commands, fault.error, keepalive)
        except ContentionPersists as persisting:
            return self._defer(commands, persisting.error, keepalive)

    def _defer(
        self, commands: list[IncomingCommand], error: Exception, keepalive: Callable[[], None]
    ) -> list[Disposition]:
        """Apply what goes through one by one; what still meets contention waits in a tier.

        A later command for an order whose earlier command waits is held back
        behind it (`HeldBack`): it is counted as having failed at least as often,
        so it waits in the same tier, published after it, or a later one, and is
        dead-lettered with it when that one has used up every tier.
        """
        if len(commands) == 1:
            return [RetryLater(type(error).__name__, str(error).strip())]
        log.warning(
            "batch keeps meeting contention; applying its commands one at a time",
            extra={"size": len(commands), "error": repr(error)},
        )
        waiting: dict[str, IncomingCommand] = {}
        results: list[Disposition] = []
        for command in commands:
            number = command.command.order_number
            if number in waiting:
                results.append(
                    HeldBack(waiting[number], f"an earlier command for order {number} waits too")
                )
                continue
            [result] = self._apply([command], keepalive, contention_retries=0)
            if isinstance(result, RetryLater):
                waiting[number] = command
            results.append(result)
        return results

    def _isolate(
        self, commands: list[IncomingCommand], error: Exception, keepalive: Callable[[], None]
    ) -> list[Disposition]:
        if len(commands) > 1:
            log.warning(
                "batch failed; applying its commands one at a time",
                extra={
                    "size": len(commands),
                    "message_ids": [command.message_id for command in commands],
                    "error": repr(error),
                },
            )
            return [result for command in commands for result in self._apply([command], keepalive)]
        [command] = commands
        log.error(
            "command cannot be applied",
            exc_info=error,
            extra={
                "command_id": str(command.command.command_id),
                "message_id": command.message_id,
                "correlation_id": command.correlation,
            },
        )
        return [Poison(DeadLetterReason.APPLY_FAILED, f"{type(error).__name__}: {error}")]


class CommandFault(Exception):
    """Applying the batch failed in a way that may be one command's fault."""

    def __init__(self, error: Exception) -> None:
        super().__init__(repr(error))
        self.error = error


def _as_disposition(result: Disposition) -> Disposition:
    if isinstance(result, ApplyResult) and result.content_conflict:
        return Poison(
            DeadLetterReason.COMMAND_ID_REUSED,
            f"command id {result.command_id} was already used for a command with other content "
            f"(recorded outcome: {result.outcome.value})",
        )
    return result


def _log_disposition(message: Any, disposition: Disposition) -> None:
    properties = message.properties
    context: dict[str, Any] = {
        "message_id": properties.get("message_id"),
        "correlation_id": properties.get("correlation_id"),
        "redelivered": bool(message.delivery_info.get("redelivered")),
    }
    if isinstance(disposition, Poison | RetryLater | HeldBack):
        return  # the failure router logs where it sends the message
    context.update(
        command_id=str(disposition.command_id),
        order_number=disposition.order_number,
        outcome=disposition.outcome.value,
        reason=disposition.reason.value if disposition.reason else None,
        duplicate_delivery=disposition.redelivered,
    )
    routine = disposition.outcome == "applied" and not disposition.redelivered
    what = "redelivered" if disposition.redelivered else disposition.outcome.value
    log.log(logging.DEBUG if routine else logging.INFO, "command %s", what, extra=context)
