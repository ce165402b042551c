"""The outbox relay: publish committed events in outbox order, with publisher confirms.

Only one relay publishes at a time (a PostgreSQL advisory lock elects it; the
others stand by), so the events of one order leave in the order they were
committed. Rows are marked published only after the broker confirmed them: a
crash in between publishes them again, with the same event id, which consumers
use to drop the repeat. If the broker refuses an event (a consumer's queue is
full and rejects publishes, say), the events before it are marked and the rest
wait: the refused event alone is offered again, with backoff, until the broker
takes it.
"""

import logging
import threading
from itertools import takewhile
from typing import Any

from worker.config import Settings
from worker.db import outbox
from worker.db.connection import Connection, connect
from worker.db.errors import is_transient_database_error
from worker.messaging.broker import connect_declared, serve
from worker.messaging.publisher import ConfirmedPublisher
from worker.messaging.topology import Topology
from worker.resilience import retry_until_stopped, run_sessions

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
        self._topology = Topology.for_settings(settings)
        self._batch_limit = settings.relay_batch_size

    def run(self) -> None:
        """Relay until `stop` is set, reconnecting to either server after a failure."""
        log.info("relay starting", extra={"exchange": self._topology.events_exchange})
        run_sessions(
            self._stop, self._relay_until_stopped, self._settings.reconnect_max_seconds, log
        )
        log.info("relay stopped")

    def _relay_until_stopped(self) -> None:
        database = connect(self._settings, self.role, autocommit=True)
        try:
            broker = connect_declared(self._settings, self.role, self._topology)
        except BaseException:
            database.close()
            raise
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
            while not self._stop.is_set():
                if not retrying(self._publish_some, database, broker, publisher):
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

    def _publish_some(
        self, database: Connection, broker: Any, publisher: ConfirmedPublisher
    ) -> bool:
        """Publish what is waiting; True if more may be waiting already.

        After a refusal only the refused event is offered, until it is taken,
        so the events behind it are not sent to every other queue on each try.
        """
        limit = self._batch_limit
        try:
            published = self._publish_pending(database, broker, publisher, limit)
        except EventRefused:
            self._batch_limit = 1
            raise
        self._batch_limit = self._settings.relay_batch_size
        return published == limit

    def _publish_pending(
        self, database: Connection, broker: Any, publisher: ConfirmedPublisher, limit: int
    ) -> int:
        """Publish up to `limit` of the oldest unpublished events; return how many were taken."""
        pending = outbox.unpublished(database, limit)
        with publisher.coalesced():
            tags = [self._publish_one(publisher, event) for event in pending]
        refused = set(publisher.wait_for_confirms())
        confirmed = takewhile(lambda pair: pair[1] not in refused, zip(pending, tags, strict=True))
        taken = [event for event, _tag in confirmed]
        self._mark_published(database, broker, taken)
        if refused:
            first = pending[len(taken)]
            raise EventRefused(f"the broker refused event {first.event_id} ({first.message_type})")
        if taken:
            log.debug("published events", extra={"count": len(taken)})
        return len(taken)

    def _publish_one(self, publisher: ConfirmedPublisher, event: outbox.PendingEvent) -> int:
        return publisher.publish(
            event.payload.encode(),
            exchange=self._topology.outbox_exchange(event.exchange),
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

    def _mark_published(
        self, database: Connection, broker: Any, taken: list[outbox.PendingEvent]
    ) -> None:
        """Record what the broker confirmed, retrying in place while the session lives.

        A read-only server after a failover refuses the update; publishing the
        same events again on every retry would flood consumers with repeats.
        """
        retrying = retry_until_stopped(
            self._stop,
            lambda error: is_transient_database_error(error) and not database.broken,
            self._settings.reconnect_max_seconds,
            log,
            keepalive=lambda: serve(broker),
        )
        retrying(outbox.mark_published, database, taken)
