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

import contextlib
import logging
import threading
import time
from typing import Any

from worker.config import Settings
from worker.crashpoints import RELAY_AFTER_PUBLISH_BEFORE_MARK, crash_point
from worker.db import outbox
from worker.db.connection import Connection, connect
from worker.db.errors import translated
from worker.errors import Contention, Unavailable
from worker.kernel.sessions import Ready, run_sessions
from worker.messaging.amqp_session import AmqpSession
from worker.messaging.broker import serve
from worker.messaging.publisher import ConfirmedPublisher
from worker.wiring import WorkerParts

log = logging.getLogger(__name__)

STANDBY_POLL_SECONDS = 0.5
CONFIRM_POLL_SECONDS = 0.002
"""How long the relay waits for confirms before looking for new commits again."""
SETTLE_ON_STOP_SECONDS = 5.0


class EventRefused(Exception):
    """The broker nacked an event; it stays in the outbox and is tried again later."""


ROLE = "relay"


class _Window:
    """The events published and not yet marked, in outbox order, with their delivery tags."""

    def __init__(self, publisher: ConfirmedPublisher) -> None:
        self.publisher = publisher
        self.events: list[outbox.PendingEvent] = []
        self.tags: list[int] = []

    def room(self, capacity: int) -> int:
        return max(0, capacity - len(self.events))

    def add(self, event: outbox.PendingEvent, tag: int) -> None:
        self.events.append(event)
        self.tags.append(tag)

    @property
    def ids(self) -> list[int]:
        return [event.id for event in self.events]

    def take(self, count: int) -> list[outbox.PendingEvent]:
        """Remove and return the first `count` events, now settled."""
        done, self.events = self.events[:count], self.events[count:]
        settled, self.tags = self.tags[:count], self.tags[count:]
        self.publisher.forget(settled)
        return done

    def clear(self) -> None:
        """Forget everything in flight: the next read starts again at the oldest unpublished."""
        self.publisher.forget(self.tags)
        self.events, self.tags = [], []


class OutboxRelay:
    """Moves events from the outbox table to the events exchange."""

    role = ROLE

    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        self._settings = settings
        self._parts = WorkerParts.of(ROLE, settings, stop)
        self._stopping = self._parts.stopping
        self._attempts = self._parts.attempts()
        self._topology = self._parts.topology
        self._batch_limit = settings.relay_batch_size

    def run(self) -> None:
        """Relay until stopped, reconnecting to either server after a failure."""
        log.info("relay starting", extra={"exchange": self._topology.events_exchange})
        run_sessions(
            self._stopping,
            self._relay_until_stopped,
            role=ROLE,
            max_wait_seconds=self._settings.reconnect_max_seconds,
            patience=self._parts.patience,
            hooks=self._parts.hooks,
        )
        log.info("relay stopped")

    def _relay_until_stopped(self, ready: Ready) -> None:
        with translated():
            database = connect(self._settings, ROLE, autocommit=True)
        try:
            session = AmqpSession(self._settings, ROLE, self._topology)
        except BaseException:
            database.close()
            raise
        broker = session.connection
        try:
            with translated():
                if not self._become_leader(database, broker):
                    return
                outbox.listen_for_commits(database)
                window = _Window(session.publisher())
                ready()
                retrying = self._attempts.retrying(
                    session.serve,
                    only_if=lambda error: isinstance(error, EventRefused),
                    through_grace=False,
                )
                retrying(self._relay, database, broker, window)
                self._settle_before_leaving(database, broker, window)  # a clean stop
        finally:
            database.close()  # also releases the leader lock
            session.close()

    def _become_leader(self, database: Connection, broker: Any) -> bool:
        """Wait until this relay holds the leader lock; False if stopped first."""
        announced = False
        while not self._stopping.requested():
            if outbox.try_relay_lock(database):
                log.info("relay is the leader; publishing")
                return True
            if not announced:
                log.info("another relay is publishing; standing by")
                announced = True
            serve(broker, STANDBY_POLL_SECONDS)
        return False

    def _relay(self, database: Connection, broker: Any, window: "_Window") -> None:
        """Keep up to `relay_batch_size` events in flight; mark them as their confirms come.

        Newly committed events are sent while earlier ones still wait for their
        confirms, so a commit reaches the broker within one read of the outbox,
        not after the previous batch's confirms and marking.
        """
        more = True  # look at the outbox once on taking over
        while not self._stopping.requested():
            if more and window.room(self._capacity):
                read = window.room(self._capacity)
                more = self._send_next(database, window, read) == read
            self._settle(database, broker, window)
            if not window.events and not more:
                outbox.wait_for_commits(database, self._settings.relay_sweep_seconds)
                more = True  # a commit, or the sweep
            elif not more:
                window.publisher.poll(CONFIRM_POLL_SECONDS)
                more = outbox.wait_for_commits(database, 0)
            serve(broker)

    @property
    def _capacity(self) -> int:
        return self._batch_limit

    def _send_next(self, database: Connection, window: "_Window", limit: int) -> int:
        """Publish the next `limit` events after those in flight; return how many there were."""
        pending = outbox.unpublished(database, limit, in_flight=window.ids)
        with window.publisher.coalesced():
            for event in pending:
                window.add(event, self._publish_one(window.publisher, event))
        return len(pending)

    def _settle(self, database: Connection, broker: Any, window: "_Window") -> None:
        """Mark the confirmed events at the head of the window; stop at a refused one.

        After a refusal only the refused event is offered, until it is taken,
        so the events behind it are not sent to every other queue on each try.
        """
        taken, refused = window.publisher.settled_prefix(window.tags)
        done = window.take(taken)
        if done:
            crash_point(RELAY_AFTER_PUBLISH_BEFORE_MARK)
            self._mark_published(database, broker, done)
            self._batch_limit = self._settings.relay_batch_size
            log.debug("published events", extra={"count": len(done)})
        if refused:
            first = window.events[0]
            window.clear()
            self._batch_limit = 1
            raise EventRefused(f"the broker refused event {first.event_id} ({first.message_type})")

    def _settle_before_leaving(self, database: Connection, broker: Any, window: "_Window") -> None:
        """On a clean stop, wait briefly for the confirms in flight and mark what was taken."""
        if not window.events:
            return
        deadline = time.monotonic() + SETTLE_ON_STOP_SECONDS
        with contextlib.suppress(EventRefused):
            while window.events and time.monotonic() < deadline:
                window.publisher.poll(CONFIRM_POLL_SECONDS)
                self._settle(database, broker, window)

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
        retrying = self._attempts.retrying(
            lambda: serve(broker),
            only_if=lambda error: (
                isinstance(error, Unavailable | Contention) and not database.broken
            ),
        )
        retrying(self._mark, database, taken)

    @staticmethod
    def _mark(database: Connection, taken: list[outbox.PendingEvent]) -> None:
        with translated():
            outbox.mark_published(database, taken)
