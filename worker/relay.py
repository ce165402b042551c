"""The outbox relay: publish committed events in outbox order, with publisher confirms.

Only one relay publishes at a time (a PostgreSQL advisory lock elects it; the
others stand by), so the events of one order leave in the order they were
committed. Rows are marked published only after the broker confirmed them: a
crash in between publishes them again, with the same event id, which consumers
use to drop the repeat. If the broker refuses an event (a consumer's queue is
full and rejects publishes, say), the events before it are marked and the rest
wait: the refused event alone is offered again with backoff until the broker
takes it, so no event overtakes an earlier one. Queues that did take it see it
again on each try, under the same event id.
"""

import logging
import threading
from itertools import takewhile
from typing import Any

from worker.config import Settings
from worker.db import outbox
from worker.db.connection import Connection, connect
from worker.messaging.broker import ConfirmedPublisher, connect_declared, serve
from worker.messaging.topology import Topology
from worker.resilience import is_connection_failure, retry_until_stopped

log = logging.getLogger(__name__)

STANDBY_POLL_SECONDS = 0.5


class EventRefused(Exception):
    """The broker nacked an event; it stays in the outbox and is tried again later."""


class OutboxRelay:
    """Moves events from the outbox table to the events exchange."""

    role = "relay"

    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        self._settings = settings
        self._stop = stop
        self._topology = Topology(settings.namespace, settings.delivery_limit)

    def run(self) -> None:
        """Relay until `stop` is set, reconnecting to either server after a failure."""
        log.info("relay starting", extra={"exchange": self._topology.events_exchange})
        while not self._stop.is_set():
            try:
                self._relay_until_stopped()
            except Exception as error:
                if self._stop.is_set():
                    break
                if not is_connection_failure(error):
                    raise
                log.warning("connection lost; reconnecting", extra={"error": repr(error)})
        log.info("relay stopped")

    def _connect(self) -> tuple[Connection, Any]:
        def open_both() -> tuple[Connection, Any]:
            database = connect(self._settings, self.role, autocommit=True)
            try:
                broker = connect_declared(self._settings, self.role, self._topology)
            except BaseException:
                database.close()
                raise
            return database, broker

        retrying = retry_until_stopped(
            self._stop, is_connection_failure, self._settings.reconnect_max_seconds, log
        )
        return retrying(open_both)

    def _relay_until_stopped(self) -> None:
        database, broker = self._connect()
        try:
            if not self._become_leader(database, broker):
                return
            outbox.listen_for_commits(database)
            publisher = ConfirmedPublisher(broker)
            retrying = retry_until_stopped(
                self._stop,
                lambda error: isinstance(error, EventRefused),
                self._settings.reconnect_max_seconds,
                log,
                keepalive=lambda: serve(broker),
            )
            limit = self._settings.relay_batch_size

            def publish_some() -> bool:
                """Publish what is waiting; True if more may be waiting already."""
                nonlocal limit
                try:
                    published = self._publish_pending(database, publisher, limit)
                except EventRefused:
                    limit = 1  # retry the refused event alone, not everything after it
                    raise
                more, limit = published == limit, self._settings.relay_batch_size
                return more

            while not self._stop.is_set():
                if not retrying(publish_some):
                    outbox.wait_for_commits(database, self._settings.relay_sweep_seconds)
                serve(broker)
        finally:
            database.close()  # also releases the leader lock
            broker.release()

    def _become_leader(self, database: Connection, broker: Any) -> bool:
        """Wait until this relay holds the leader lock; False if stopped first."""
        announced = False
        while not self._stop.is_set():
            if outbox.try_relay_lock(database):
                log.info("relay is the leader; publishing")
                return True
            if not announced:
                log.info("another relay is publishing; standing by")
                announced = True
            serve(broker, STANDBY_POLL_SECONDS)
        return False

    def _publish_pending(
        self, database: Connection, publisher: ConfirmedPublisher, limit: int
    ) -> int:
        """Publish up to `limit` of the oldest unpublished events; return how many were taken."""
        pending = outbox.unpublished(database, limit)
        tags = [
            publisher.publish(
                event.payload.encode(),
                exchange=self._topology.events_exchange,
                routing_key=event.routing_key,
                headers={"causation_id": str(event.command_id), "order_number": event.order_number},
                properties={
                    "message_id": str(event.event_id),
                    "type": event.message_type,
                    "correlation_id": event.correlation_id,
                    "timestamp": int(event.created_at.timestamp()),
                    "app_id": "order-status",
                },
            )
            for event in pending
        ]
        refused = set(publisher.wait_for_confirms())
        confirmed = takewhile(lambda pair: pair[1] not in refused, zip(pending, tags, strict=True))
        taken = [event for event, _tag in confirmed]
        outbox.mark_published(database, taken)
        if refused:
            first = pending[len(taken)]
            raise EventRefused(f"the broker refused event {first.event_id} ({first.message_type})")
        if taken:
            log.debug("published events", extra={"count": len(taken)})
        return len(taken)
