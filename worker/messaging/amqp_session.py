"""The kernel's broker session over kombu: the only consumer code that knows the client library.

Deliveries become `Delivery` values (the body as the bytes that were sent),
acks are multiple acks by delivery tag, and every client error leaves as the
project's own `Unavailable` or `Misconfigured`.
"""

import time
from collections.abc import Callable, Sequence
from typing import Any

import kombu

from worker.config import Settings
from worker.kernel.delivery import Delivery
from worker.messaging.broker import IDLE_POLL_SECONDS, connect_declared, raw_body, serve
from worker.messaging.errors import translated
from worker.messaging.publisher import ConfirmedPublisher
from worker.messaging.topology import Topology


def delivery_of(message: Any, queue: str) -> Delivery:
    """Describe a kombu message consumed from `queue` as the kernel sees it."""
    info = message.delivery_info
    return Delivery(
        queue=queue,
        body=raw_body(message),
        properties=message.properties,
        headers=message.headers or {},
        exchange=str(info.get("exchange", "")),
        routing_key=str(info.get("routing_key", "")),
        delivery_tag=int(info.get("delivery_tag", 0)),
        redelivered=bool(info.get("redelivered")),
        content_type=message.content_type,
        content_encoding=message.content_encoding,
    )


class AmqpSession:
    """One kombu connection: the topology declared, one consuming channel, one publisher."""

    def __init__(self, settings: Settings, role: str, topology: Topology) -> None:
        with translated(timeout_is_failure=True):
            self._connection = connect_declared(settings, role, topology)
        self._channel: Any = None
        self._consumers: list[Any] = []
        self._publisher: ConfirmedPublisher | None = None
        self._buffer: list[Delivery] = []

    def consume(self, queues: Sequence[Any], prefetch: int) -> None:
        with translated():
            self._channel = self._connection.channel()
            self._channel.auto_decode = False  # keep bodies as the bytes that were sent
            self._channel.basic_qos(0, prefetch, False)
            # One kombu consumer per queue, so each delivery knows the queue it came from.
            self._consumers = [
                kombu.Consumer(
                    self._channel,
                    queues=[queue],
                    on_message=self._receiver(queue.name),
                    auto_declare=False,
                    no_ack=False,
                )
                for queue in queues
            ]
            for consumer in self._consumers:
                consumer.consume()

    def _receiver(self, queue: str) -> Callable[[Any], None]:
        def receive(message: Any) -> None:
            self._buffer.append(delivery_of(message, queue))

        return receive

    def collect(
        self, size: int, wait_seconds: float, stopping: Callable[[], bool]
    ) -> list[Delivery]:
        """Wait for a batch: full at `size`, or `wait_seconds` after its first delivery.

        With nothing buffered it waits one idle poll interval at most, so the
        caller looks at its stop request and periodic work in between.
        """
        buffer = self._buffer
        deadline: float | None = None
        idle_until = time.monotonic() + IDLE_POLL_SECONDS
        with translated():
            while not stopping() and len(buffer) < size:
                now = time.monotonic()
                if buffer and deadline is None:
                    deadline = now + wait_seconds
                timeout = (idle_until if deadline is None else deadline) - now
                if timeout <= 0:
                    break
                try:
                    self._connection.drain_events(timeout=timeout)
                except TimeoutError:
                    self._connection.heartbeat_check()
        batch = buffer[:size]
        del buffer[:size]
        return batch

    def publisher(self) -> ConfirmedPublisher:
        if self._publisher is None:
            with translated():
                self._publisher = ConfirmedPublisher(self._connection)
        return self._publisher

    def ack_through(self, delivery: Delivery) -> None:
        with translated():
            self._channel.basic_ack(delivery.delivery_tag, multiple=True)

    def serve(self) -> None:
        with translated():
            serve(self._connection)

    def close(self) -> None:
        self._connection.release()

    @property
    def connection(self) -> Any:
        """The kombu connection, for the relay's producer loop."""
        return self._connection
