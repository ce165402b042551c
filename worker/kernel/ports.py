"""What the kernel needs of the broker, as interfaces: the AMQP adapter and the test stub fit both.

`worker.messaging.amqp_session.AmqpSession` implements them over kombu;
`tests/unit/kernel_fakes.py` implements them in memory. Every method raises
only the project's own errors (`worker.errors`).
"""

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from worker.kernel.delivery import Delivery, OutgoingMessage

Keepalive = Callable[[], None]
"""Reads what the broker sent and answers its heartbeats; call it during long waits."""


class Publisher(Protocol):
    """Publishes persistent messages in confirm mode; `confirm_all` waits for every answer."""

    def publish_message(self, message: OutgoingMessage) -> int:
        """Send `message` persistent and mandatory (one no queue takes fails the confirm)."""

    def confirm_all(self, timeout: float = 30.0) -> None: ...


class Session(Protocol):
    """One connection to the broker for one consumer session."""

    def consume(self, queues: Sequence[Any], prefetch: int) -> None:
        """Start consuming `queues` (as the topology names them), `prefetch` unacked at most."""

    def collect(
        self, size: int, wait_seconds: float, stopping: Callable[[], bool]
    ) -> list[Delivery]:
        """Wait for a batch: full at `size`, or `wait_seconds` after its first delivery.

        Returns early (possibly empty) once `stopping()` is true, and after an idle
        poll interval with nothing, so the caller can do its periodic work.
        """

    def publisher(self) -> Publisher:
        """The session's confirm-mode publisher."""

    def ack_through(self, delivery: Delivery) -> None:
        """Ack `delivery` and every delivery before it on this session."""

    def serve(self) -> None:
        """Read what the broker sent and send our heartbeat if due."""

    def close(self) -> None:
        """Close the connection; unacked deliveries go back to their queues."""
