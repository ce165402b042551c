"""The reference pipeline: our topology and guarantees around trivial processing.

`python -m worker.bench.reference ROLE ...` runs one process of it, as the real
workers run one process each, so its CPU and memory are measured the same way:

- `commands`: consumes the status worker's quorum queue in batches of what has
  arrived (at most BATCH), turns each command into one event (with DATABASE_URL,
  after writing the batch as `reference_db` does and committing), publishes the
  events persistent to the events exchange with publisher confirms, and acks the
  batch (one multiple ack) only once the broker confirmed all its events. One
  batch is in flight at a time; what arrives meanwhile forms the next one.
- `drain`: consumes the rules worker's queue and acks what arrived, as a rules
  worker with no rule to judge would.

It uses pika's asynchronous connection (the load generator's client), so the
reference measures the hops and guarantees, not any one client's overhead.
SIGTERM closes the connection; unacked deliveries go back to the queue.
"""

import json
import signal
import sys
from collections import deque
from typing import Any

import pika
import psycopg
from pika.spec import Basic

from worker.bench.reference_db import STATUS_CHANGED, Change, Event, apply_batch, event_for


class _Process:
    """An asynchronous connection with one channel, closed on SIGTERM."""

    def __init__(self, amqp_url: str, prefetch: int) -> None:
        self._prefetch = prefetch
        self.channel: Any = None
        self.connection: Any = pika.SelectConnection(
            pika.URLParameters(amqp_url),
            on_open_callback=lambda connection: connection.channel(
                on_open_callback=self._on_channel
            ),
            on_open_error_callback=lambda _connection, error: self._fail(error),
            on_close_callback=lambda _connection, _reason: self.connection.ioloop.stop(),
        )
        self._flush_scheduled = False

    def run(self) -> None:
        signal.signal(
            signal.SIGTERM,
            lambda _signum, _frame: self.connection.ioloop.add_callback_threadsafe(self._close),
        )
        self.connection.ioloop.start()

    def _close(self) -> None:
        if self.connection.is_open:
            self.connection.close()

    def _fail(self, error: BaseException) -> None:
        self.connection.ioloop.stop()
        raise ConnectionError(f"cannot reach RabbitMQ: {error!r}")

    def _on_channel(self, channel: Any) -> None:
        self.channel = channel
        channel.basic_qos(prefetch_count=self._prefetch, callback=lambda _frame: self.opened())

    def opened(self) -> None:
        raise NotImplementedError

    def schedule_flush(self) -> None:
        """Run `flush` once the deliveries of the current socket read are all taken in."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.connection.ioloop.add_callback_threadsafe(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def flush(self) -> None:
        raise NotImplementedError


class CommandsToEvents(_Process):
    """Commands in, one confirmed event per command out, then the batch's ack."""

    def __init__(
        self, amqp_url: str, queue: str, events_exchange: str, batch: int,
        database: psycopg.Connection[Any] | None,
    ) -> None:  # fmt: skip
        super().__init__(amqp_url, prefetch=2 * batch)
        self._queue = queue
        self._exchange = events_exchange
        self._batch = batch
        self._database = database
        self._arrived: deque[tuple[int, Change]] = deque()
        self._published = 0
        self._unconfirmed: deque[int] = deque()
        self._ack_tag: int | None = None

    def opened(self) -> None:
        self.channel.confirm_delivery(
            self._on_confirm,
            callback=lambda _frame: self.channel.basic_consume(self._queue, self._on_message),
        )

    def _on_message(self, _channel: Any, method: Any, properties: Any, body: bytes) -> None:
        command = json.loads(body)
        change = Change(properties.message_id, command["order_number"], command["to_status"])
        self._arrived.append((method.delivery_tag, change))
        if len(self._arrived) >= self._batch:
            self.flush()
        else:
            self.schedule_flush()

    def flush(self) -> None:
        if self._ack_tag is not None or not self._arrived:
            return  # the batch in flight goes first; this one waits for its confirms
        taken = [self._arrived.popleft() for _ in range(min(self._batch, len(self._arrived)))]
        changes = [change for _tag, change in taken]
        if self._database is not None:
            events = apply_batch(self._database, changes)
        else:
            events = [event_for(change, None, None) for change in changes]
        self._ack_tag = taken[-1][0]
        for event in events:
            self._publish(event)
        if not self._unconfirmed:  # every command was a repeat: nothing to wait for
            self._ack()

    def _publish(self, event: Event) -> None:
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=2,
            message_id=event.event_id,
            type="OrderStatusChanged",
            headers={"causation_id": event.command_id},
        )
        self.channel.basic_publish(
            self._exchange, STATUS_CHANGED.routing_key, event.body, properties
        )
        self._published += 1
        self._unconfirmed.append(self._published)  # delivery tags count from 1

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        if isinstance(method, Basic.Nack):
            raise RuntimeError(f"the broker refused event {method.delivery_tag}")
        if method.multiple:
            while self._unconfirmed and self._unconfirmed[0] <= method.delivery_tag:
                self._unconfirmed.popleft()
        elif method.delivery_tag in self._unconfirmed:
            self._unconfirmed.remove(method.delivery_tag)
        if not self._unconfirmed and self._ack_tag is not None:
            self._ack()

    def _ack(self) -> None:
        self.channel.basic_ack(self._ack_tag, multiple=True)
        self._ack_tag = None
        self.flush()


class Drain(_Process):
    """Acks whatever arrives on a queue, one multiple ack per socket read."""

    def __init__(self, amqp_url: str, queue: str, prefetch: int) -> None:
        super().__init__(amqp_url, prefetch)
        self._queue = queue
        self._last_tag: int | None = None

    def opened(self) -> None:
        self.channel.basic_consume(self._queue, self._on_message)

    def _on_message(self, _channel: Any, method: Any, _properties: Any, _body: bytes) -> None:
        self._last_tag = method.delivery_tag
        self.schedule_flush()

    def flush(self) -> None:
        if self._last_tag is not None:
            self.channel.basic_ack(self._last_tag, multiple=True)
            self._last_tag = None


def main(argv: list[str]) -> int:
    """python -m worker.bench.reference commands AMQP_URL QUEUE EXCHANGE BATCH [DATABASE_URL]
    python -m worker.bench.reference drain AMQP_URL QUEUE PREFETCH"""
    role, amqp_url, queue, *rest = argv
    if role == "drain":
        Drain(amqp_url, queue, int(rest[0])).run()
        return 0
    exchange, batch, *database_url = rest
    database = psycopg.connect(database_url[0], autocommit=True) if database_url else None
    try:
        CommandsToEvents(amqp_url, queue, exchange, int(batch), database).run()
    finally:
        if database is not None:
            database.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
