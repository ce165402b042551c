"""The outbox relay: publish committed events in outbox order, with publisher confirms.

Only one relay publishes at a time (a PostgreSQL advisory lock elects it; the
others stand by), so the events of one order leave in the order they were
committed. Rows are marked published only after the broker confirmed them: a
crash in between publishes them again, with the same event id, which consumers
use to drop the repeat.
"""

import logging
import threading
from typing import Any

from psycopg import sql

from worker.config import Settings
from worker.db.apply import OUTBOX_CHANNEL
from worker.db.connection import Connection, connect
from worker.messaging.broker import ConfirmedPublisher, connect_broker
from worker.messaging.topology import Topology, declare_topology
from worker.resilience import is_connection_failure, retry_until_stopped

log = logging.getLogger(__name__)

LEADER_LOCK = "order-status:outbox-relay"

TRY_LEADERSHIP = "SELECT pg_try_advisory_lock(hashtext(%(lock)s))"

SELECT_PENDING = """
SELECT id, event_id, routing_key, message_type, payload::text, order_number, command_id,
       correlation_id, created_at
FROM outbox
WHERE published_at IS NULL
ORDER BY id
LIMIT %(limit)s
"""

MARK_PUBLISHED = "UPDATE outbox SET published_at = now() WHERE id = ANY(%(ids)s)"

STANDBY_POLL_SECONDS = 1.0


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
                if not is_connection_failure(error):
                    raise
                log.warning("connection lost; reconnecting", extra={"error": repr(error)})
        log.info("relay stopped")

    def _connect(self) -> tuple[Connection, Any]:
        def open_both() -> tuple[Connection, Any]:
            database = connect(self._settings, self.role, autocommit=True)
            try:
                broker = connect_broker(self._settings, self.role)
                declare_topology(broker.default_channel, self._topology)
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
            database.execute(sql.SQL("LISTEN {}").format(sql.Identifier(OUTBOX_CHANNEL)))
            publisher = ConfirmedPublisher(broker)
            while not self._stop.is_set():
                published = self._publish_pending(database, publisher)
                if published < self._settings.relay_batch_size:
                    self._wait_for_commits(database)
                broker.heartbeat_check()
        finally:
            database.close()  # also releases the leader lock
            broker.release()

    def _become_leader(self, database: Connection, broker: Any) -> bool:
        """Wait until this relay holds the leader lock; False if stopped first."""
        announced = False
        while not self._stop.is_set():
            row = database.execute(TRY_LEADERSHIP, {"lock": LEADER_LOCK}).fetchone()
            if row and row[0]:
                log.info("relay is the leader; publishing")
                return True
            if not announced:
                log.info("another relay is publishing; standing by")
                announced = True
            self._stop.wait(STANDBY_POLL_SECONDS)
            broker.heartbeat_check()
        return False

    def _publish_pending(self, database: Connection, publisher: ConfirmedPublisher) -> int:
        rows = database.execute(
            SELECT_PENDING, {"limit": self._settings.relay_batch_size}
        ).fetchall()
        if not rows:
            return 0
        for (
            _id,
            event_id,
            routing_key,
            message_type,
            payload,
            order_number,
            command_id,
            correlation_id,
            created_at,
        ) in rows:
            publisher.publish(
                payload.encode(),
                exchange=self._topology.events_exchange,
                routing_key=routing_key,
                headers={"causation_id": str(command_id), "order_number": order_number},
                properties={
                    "message_id": str(event_id),
                    "type": message_type,
                    "correlation_id": correlation_id,
                    "timestamp": int(created_at.timestamp()),
                    "app_id": "order-status",
                },
            )
        publisher.wait_for_confirms()
        database.execute(MARK_PUBLISHED, {"ids": [row[0] for row in rows]})
        log.debug("published events", extra={"count": len(rows)})
        return len(rows)

    def _wait_for_commits(self, database: Connection) -> None:
        """Sleep until a worker's NOTIFY, or the sweep interval, whichever comes first."""
        for _notification in database.notifies(
            timeout=self._settings.relay_sweep_seconds, stop_after=1
        ):
            pass
