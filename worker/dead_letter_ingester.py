"""The dead-letter ingester: move every message of `{ns}.dead-letter` into the store.

A batch of messages is inserted in one transaction and acked, with one
multiple ack, only after the commit. A crash in between delivers them again;
each row's fingerprint (the message as it sat in the queue) makes the second
insert a no-op. A database that is unwell is waited out holding the batch, as
the status worker does.
"""

import logging
import threading
from dataclasses import replace
from typing import Any

import kombu

from worker.config import Settings
from worker.db import dead_letters
from worker.db.connection import Database
from worker.db.errors import is_transient_database_error
from worker.messaging.broker import collect_batch, connect_declared, raw_body, serve
from worker.messaging.dead_letter_record import DeadLetterRecord, describe, undescribed
from worker.messaging.topology import Topology
from worker.resilience import retry_until_stopped, run_sessions

log = logging.getLogger(__name__)

BATCH_SIZE = 200
BATCH_WAIT_SECONDS = 0.05


class DeadLetterIngester:
    """Keeps the dead-letter queue empty by storing its messages in PostgreSQL."""

    role = "dead-letter-ingester"

    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        self._settings = settings
        self._stop = stop
        self._topology = Topology.for_settings(settings)
        self._database = Database(settings, self.role)

    def run(self) -> None:
        """Ingest until `stop` is set, reconnecting to either server after a failure."""
        log.info("dead-letter ingester starting", extra={"queue": self._topology.dead_letter_queue})
        try:
            run_sessions(
                self._stop, self._ingest_until_stopped, self._settings.reconnect_max_seconds, log
            )
        finally:
            self._database.close()
            log.info("dead-letter ingester stopped")

    def _ingest_until_stopped(self) -> None:
        self._database.connection()  # fail early on a database that is not there
        connection = connect_declared(self._settings, self.role, self._topology)
        try:
            channel = connection.channel()
            channel.auto_decode = False  # the body is stored byte for byte
            channel.basic_qos(0, 2 * BATCH_SIZE, False)
            buffer: list[Any] = []
            consumer = kombu.Consumer(
                channel,
                queues=[self._topology.dead_letters()],
                on_message=buffer.append,
                auto_declare=False,
                no_ack=False,
            )
            with consumer:
                while not self._stop.is_set():
                    batch = collect_batch(
                        connection, buffer, self._stop, BATCH_SIZE, BATCH_WAIT_SECONDS
                    )
                    if batch:
                        self._store(batch, keepalive=lambda: serve(connection))
                    connection.heartbeat_check()
        finally:
            connection.release()

    def _store(self, batch: list[Any], keepalive: Any) -> None:
        records = [record_of(message, self._settings.delivery_limit) for message in batch]
        retrying = retry_until_stopped(
            self._stop,
            is_transient_database_error,
            self._settings.reconnect_max_seconds,
            log,
            keepalive=keepalive,
        )

        def attempt(chunk: list[DeadLetterRecord]) -> None:
            try:
                dead_letters.store(self._database.connection(), chunk)
            except Exception as error:
                if is_transient_database_error(error):
                    self._database.close()
                    raise
                raise RecordRefused(error) from error

        try:
            retrying(attempt, records)
        except RecordRefused:
            # The queue has no delivery limit: a row the database refuses must not
            # stop the ingester for good. Store the others, and that one plainly.
            for record in records:
                try:
                    retrying(attempt, [record])
                except RecordRefused as refused:
                    log.error(
                        "dead letter refused by the database; storing it without its headers",
                        exc_info=refused.error,
                        extra={"message_id": record.message_id, "reason": record.reason},
                    )
                    retrying(attempt, [without_headers(record, refused.error)])
        for record in records:
            log.info(
                "stored dead letter",
                extra={
                    "message_id": record.message_id,
                    "correlation_id": record.correlation_id,
                    "reason": record.reason,
                    "source_queue": record.source_queue,
                },
            )
        batch[-1].ack(multiple=True)  # only after the commit


class RecordRefused(Exception):
    """The database refused a dead-letter row for its content; retrying will not help."""

    def __init__(self, error: Exception) -> None:
        super().__init__(repr(error))
        self.error = error


def without_headers(record: DeadLetterRecord, error: Exception) -> DeadLetterRecord:
    """The record with only what surely fits: the body, the reason, and why the rest is missing."""
    note = f"stored without properties and headers: {type(error).__name__}: {error}"
    return replace(
        record,
        properties={},
        headers={"x-store-error": note.replace("\x00", "")},
        detail=note if record.detail is None else f"{record.detail} ({note})",
    )


def record_of(message: Any, delivery_limit: int) -> DeadLetterRecord:
    """Describe a kombu message from the dead-letter queue for the store; never raises.

    The queue has no delivery limit, and its messages' headers come from any
    producer: one that cannot be described is stored with what surely fits,
    rather than stopping the ingester on every redelivery.
    """
    delivery = message.delivery_info
    body = raw_body(message)
    exchange = str(delivery.get("exchange", ""))
    routing_key = str(delivery.get("routing_key", ""))
    try:
        return describe(
            body, exchange, routing_key, message.properties, delivery_limit=delivery_limit
        )
    except Exception as error:
        log.error(
            "dead letter cannot be described; storing its body only",
            exc_info=error,
            extra={"message_id": message.properties.get("message_id")},
        )
        return undescribed(body, exchange, routing_key, error)
