"""The dead-letter ingester: move every message of `{ns}.dead-letter` into the store.

Its handler inserts a batch in one transaction; the kernel acks it, with one
multiple ack, only after the commit. A crash in between delivers the batch
again; each row's fingerprint (the message as it sat in the queue) makes the
second insert a no-op. A database that is unwell is waited out holding the
batch. The queue has no delivery limit, so nothing here may dead-letter: a row
the database refuses is stored plainly instead (its body and reason, without
the headers that could not be stored).
"""

import logging
import threading
from collections.abc import Sequence
from dataclasses import replace

from worker.config import Settings
from worker.db import dead_letters
from worker.db.connection import Database
from worker.kernel.attempts import AttemptRunner
from worker.kernel.consumer import Consumer
from worker.kernel.delivery import Delivery
from worker.kernel.dispositions import Disposition, Done
from worker.kernel.ports import Keepalive
from worker.messaging.dead_letter_record import DeadLetterRecord, describe, undescribed
from worker.wiring import WorkerParts

log = logging.getLogger(__name__)

ROLE = "dead-letter-ingester"
BATCH_SIZE = 200
BATCH_WAIT_SECONDS = 0.05


class StoreDeadLetters:
    """The ingester's handler: a batch of dead letters stored in one transaction."""

    def __init__(self, database: Database, attempts: AttemptRunner, delivery_limit: int) -> None:
        self._database = database
        self._attempts = attempts
        self._delivery_limit = delivery_limit

    def prepare(self) -> None:
        with self._database.use():
            pass  # fail early on a database that is not there

    def handle(self, batch: Sequence[Delivery], keepalive: Keepalive) -> list[Disposition]:
        records = [record_of(delivery, self._delivery_limit) for delivery in batch]
        self._attempts.run(
            records,
            self._store,
            key=lambda record: record.fingerprint,
            keepalive=keepalive,
            culprit=lambda record, error: self._store_plainly(record, error, keepalive),
            wait_out_contention=True,  # the dead-letter queue has no tier to wait in
        )
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
        return [Done() for _ in batch]

    def _store(self, records: Sequence[DeadLetterRecord]) -> list[None]:
        with self._database.use() as connection:
            dead_letters.store(connection, list(records))
        return [None for _ in records]

    def _store_plainly(
        self, record: DeadLetterRecord, error: Exception, keepalive: Keepalive
    ) -> None:
        log.error(
            "dead letter refused by the database; storing it without its headers",
            exc_info=error,
            extra={"message_id": record.message_id, "reason": record.reason},
        )
        plain = [without_headers(record, error)]
        self._attempts.in_place(self._store, plain, keepalive, contention_too=True)

    def between_batches(self, keepalive: Keepalive) -> None:
        """Nothing periodic."""

    def close(self) -> None:
        self._database.close()


def without_headers(record: DeadLetterRecord, error: Exception) -> DeadLetterRecord:
    """The record with only what surely fits: the body, the reason, and why the rest is missing."""
    note = f"stored without properties and headers: {type(error).__name__}: {error}"
    return replace(
        record,
        properties={},
        headers={"x-store-error": note.replace("\x00", "")},
        detail=note if record.detail is None else f"{record.detail} ({note})",
    )


def record_of(delivery: Delivery, delivery_limit: int) -> DeadLetterRecord:
    """Describe a delivery from the dead-letter queue for the store; never raises.

    The queue has no delivery limit, and its messages' headers come from any
    producer: one that cannot be described is stored with what surely fits,
    rather than stopping the ingester on every redelivery.
    """
    try:
        return describe(
            delivery.body,
            delivery.exchange,
            delivery.routing_key,
            delivery.properties,
            delivery_limit=delivery_limit,
        )
    except Exception as error:
        log.error(
            "dead letter cannot be described; storing its body only",
            exc_info=error,
            extra={"message_id": delivery.message_id},
        )
        return undescribed(delivery.body, delivery.exchange, delivery.routing_key, error)


def build(settings: Settings, stop: threading.Event) -> Consumer:
    """The ingester, wired: its handler on the kernel's consumer."""
    parts = WorkerParts.of(ROLE, settings, stop)
    handler = StoreDeadLetters(Database(settings, ROLE), parts.attempts(), settings.delivery_limit)
    return parts.consumer(
        handler,
        [parts.topology.dead_letters()],
        batch_size=BATCH_SIZE,
        batch_wait_seconds=BATCH_WAIT_SECONDS,
        prefetch=2 * BATCH_SIZE,
    )
