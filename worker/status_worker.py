"""The status worker: consume commands in batches, apply each batch, ack after commit.

Per batch: decode every message (poison is set aside with its reason), apply
the commands in one transaction, copy the poison to the dead-letter exchange
and wait for the broker's confirm, and only then ack the whole batch with one
multiple ack. A crash anywhere before that ack redelivers the batch, and the
inbox turns every command that was already applied into a duplicate.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import kombu
import psycopg

from worker.config import Settings
from worker.db.apply import ApplyResult, apply_commands
from worker.db.connection import Database
from worker.db.workflow_store import load_workflow
from worker.domain.incoming import IncomingCommand
from worker.domain.workflow import Workflow
from worker.messaging.broker import ConfirmedPublisher, connect_broker, envelope_of
from worker.messaging.dead_letter import dead_letter
from worker.messaging.decoding import decode_command
from worker.messaging.poison import DeadLetterReason, Poison
from worker.messaging.topology import Topology, declare_topology
from worker.resilience import (
    is_connection_failure,
    is_transient_database_error,
    retry_until_stopped,
)

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 1.0
"""How often an idle worker looks up to check for a stop request and heartbeats."""


Disposition = ApplyResult | Poison


class StatusWorker:
    """Applies order commands from the status-worker queue to PostgreSQL."""

    role = "status-worker"

    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        self._settings = settings
        self._stop = stop
        self._topology = Topology(settings.namespace, settings.delivery_limit)
        self._database = Database(settings, self.role)

    def run(self) -> None:
        """Consume until `stop` is set, reconnecting to either server after a failure."""
        log.info("status worker starting", extra={"queue": self._topology.status_worker_queue})
        try:
            while not self._stop.is_set():
                try:
                    self._consume_until_stopped()
                except Exception as error:
                    if not is_connection_failure(error):
                        raise
                    log.warning("connection lost; reconnecting", extra={"error": repr(error)})
        finally:
            self._database.close()
            log.info("status worker stopped")

    def _connect(self) -> tuple[Any, Workflow]:
        def open_both() -> tuple[Any, Workflow]:
            workflow = load_workflow(self._database.connection())
            connection = connect_broker(self._settings, self.role)
            try:
                declare_topology(connection.default_channel, self._topology)
            except BaseException:
                connection.release()
                raise
            return connection, workflow

        retrying = retry_until_stopped(
            self._stop, is_connection_failure, self._settings.reconnect_max_seconds, log
        )
        return retrying(open_both)

    def _consume_until_stopped(self) -> None:
        connection, workflow = self._connect()
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
            with consumer:
                log.info("consuming", extra={"queue": self._topology.status_worker_queue})
                while not self._stop.is_set():
                    batch = self._collect(connection, buffer)
                    if batch:
                        self._handle(batch, workflow, publisher, connection.heartbeat_check)
                    connection.heartbeat_check()
        finally:
            connection.release()

    def _collect(self, connection: Any, buffer: list[Any]) -> list[Any]:
        """Wait for a batch: full at batch_size, or batch_wait_ms after its first message."""
        wait = self._settings.batch_wait_ms / 1000
        deadline: float | None = None
        while not self._stop.is_set() and len(buffer) < self._settings.batch_size:
            if buffer and deadline is None:
                deadline = time.monotonic() + wait
            timeout = IDLE_POLL_SECONDS if deadline is None else deadline - time.monotonic()
            if timeout <= 0:
                break
            try:
                connection.drain_events(timeout=timeout)
            except TimeoutError:
                if deadline is None:
                    connection.heartbeat_check()
        batch = buffer[:]
        buffer.clear()  # in place: the consumer appends to this very list
        return batch

    def _handle(
        self,
        batch: list[Any],
        workflow: Workflow,
        publisher: ConfirmedPublisher,
        keepalive: Callable[[], None],
    ) -> None:
        decoded = [decode_command(envelope_of(message)) for message in batch]
        commands = [item for item in decoded if isinstance(item, IncomingCommand)]
        applied = iter(self._apply(workflow, commands, keepalive))
        dispositions: list[Disposition] = [
            item if isinstance(item, Poison) else _as_disposition(next(applied)) for item in decoded
        ]
        for message, disposition in zip(batch, dispositions, strict=True):
            _log_disposition(message, disposition)
            if isinstance(disposition, Poison):
                dead_letter(
                    publisher,
                    self._topology,
                    message,
                    self._topology.status_worker_queue,
                    disposition,
                )
        publisher.wait_for_confirms()
        # Everything is committed or safely dead-lettered: one ack covers the batch.
        batch[-1].ack(multiple=True)

    def _apply(
        self, workflow: Workflow, commands: list[IncomingCommand], keepalive: Callable[[], None]
    ) -> list[Disposition]:
        """Apply in one transaction; if the batch fails for good, isolate the culprit.

        Transient faults are retried here, holding the messages, rather than by
        redelivery: an outage must not use up the queue's delivery limit.
        """
        if not commands:
            return []
        retrying = retry_until_stopped(
            self._stop,
            is_transient_database_error,
            self._settings.reconnect_max_seconds,
            log,
            keepalive=keepalive,
        )

        def attempt() -> list[ApplyResult]:
            # A new connection on each attempt if the last one was lost.
            return apply_commands(self._database.connection(), workflow, commands)

        try:
            return list(retrying(attempt))
        except psycopg.Error as error:
            if is_transient_database_error(error):
                raise
            if len(commands) == 1:
                log.error(
                    "command cannot be applied",
                    extra={"command_id": str(commands[0].command.command_id), "error": repr(error)},
                )
                return [Poison(DeadLetterReason.APPLY_FAILED, f"{type(error).__name__}: {error}")]
            log.warning(
                "batch failed; applying its commands one at a time", extra={"size": len(commands)}
            )
            return [
                result
                for command in commands
                for result in self._apply(workflow, [command], keepalive)
            ]


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
    if isinstance(disposition, Poison):
        log.warning(
            "dead-lettered message",
            extra={**context, "reason": disposition.reason.value, "detail": disposition.detail},
        )
        return
    context.update(
        command_id=str(disposition.command_id),
        order_number=disposition.order_number,
        outcome=disposition.outcome.value,
        reason=disposition.reason.value if disposition.reason else None,
        duplicate_delivery=disposition.redelivered,
    )
    level = (
        logging.DEBUG
        if disposition.outcome == "applied" and not disposition.redelivered
        else logging.INFO
    )
    log.log(
        level,
        "command %s",
        "redelivered" if disposition.redelivered else disposition.outcome.value,
        extra=context,
    )
