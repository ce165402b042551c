"""An event queue of the test's own, read in bulk, that outlives a broker restart."""

from contextlib import suppress
from typing import Any

import pika
import pika.exceptions

from worker.messaging.topology import Topology

PREFETCH = 1000


class EventCollector:
    """A durable queue bound to every event; `collect()` takes what has arrived."""

    def __init__(self, amqp_url: str, topology: Topology, name: str) -> None:
        self._parameters = pika.URLParameters(amqp_url)
        self._parameters.heartbeat = 0  # read only now and then; never closed for silence
        self.queue = name
        self.event_ids: list[str] = []
        self._connection: Any = None
        channel = self._channel()
        # Durable and quorum, so a broker restart in a scenario keeps what waits in it.
        channel.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_bind(name, topology.events_exchange, routing_key="#")

    def _channel(self) -> Any:
        if self._connection is None or not self._connection.is_open:
            self._connection = pika.BlockingConnection(self._parameters)
        channel = self._connection.channel()
        channel.basic_qos(prefetch_count=PREFETCH)
        return channel

    def collect(self, idle_seconds: float = 0.3) -> int:
        """Take every event waiting, until none comes for `idle_seconds`; how many came."""
        before = len(self.event_ids)
        try:
            channel = self._channel()
            for method, properties, _body in channel.consume(
                self.queue, inactivity_timeout=idle_seconds
            ):
                if method is None:
                    break
                self.event_ids.append(str(properties.message_id))
                channel.basic_ack(method.delivery_tag)
            channel.cancel()  # returns to the queue only what arrived after the last ack
            channel.close()
        except pika.exceptions.AMQPError:
            self._connection = None  # the broker went away; read again next time
        return len(self.event_ids) - before

    def delete(self) -> None:
        with suppress(pika.exceptions.AMQPError):
            self._channel().queue_delete(self.queue)
        with suppress(pika.exceptions.AMQPError):
            if self._connection is not None and self._connection.is_open:
                self._connection.close()
