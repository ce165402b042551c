"""In-memory stand-ins for the kernel's broker session and publisher (same interfaces).

Everything they are asked to do is written to one shared `journal`, so a test
can assert the order of events (published, confirmed, acked) as well as the
events themselves.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.errors import Unavailable
from worker.kernel.delivery import Delivery, OutgoingMessage


@dataclass
class Published:
    body: bytes
    exchange: str
    routing_key: str
    headers: dict[str, Any]
    properties: dict[str, Any]


class FakePublisher:
    """Records publishes; `confirm_all` succeeds unless told to refuse the next one."""

    def __init__(self, journal: list[str]) -> None:
        self.journal = journal
        self.published: list[Published] = []
        self.refuse_next_confirm = False

    def publish_message(self, message: OutgoingMessage) -> int:
        self.published.append(
            Published(
                message.body,
                message.exchange,
                message.routing_key,
                dict(message.headers),
                dict(message.properties),
            )
        )
        self.journal.append(f"publish {message.exchange}")
        return len(self.published)

    def confirm_all(self, timeout: float = 30.0) -> None:
        if self.refuse_next_confirm:
            self.refuse_next_confirm = False
            self.journal.append("confirm refused")
            raise Unavailable("RabbitMQ", "the broker did not confirm")
        self.journal.append("confirmed")


@dataclass
class FakeSession:
    """Hands out prepared batches, then nothing; records acks, cancels and closes."""

    batches: list[list[Delivery]]
    journal: list[str] = field(default_factory=list)
    on_collect: Callable[[], None] | None = None
    acked: list[int] = field(default_factory=list)
    consumed: list[str] = field(default_factory=list)
    closed: bool = False

    def __post_init__(self) -> None:
        self._publisher = FakePublisher(self.journal)

    def consume(self, queues: Sequence[Any], prefetch: int) -> None:
        self.consumed = [queue.name for queue in queues]

    def collect(
        self, size: int, wait_seconds: float, stopping: Callable[[], bool]
    ) -> list[Delivery]:
        if self.on_collect is not None:
            self.on_collect()
        if stopping() or not self.batches:
            return []
        return self.batches.pop(0)[:size]

    def publisher(self) -> FakePublisher:
        return self._publisher

    def ack_through(self, delivery: Delivery) -> None:
        self.acked.append(delivery.delivery_tag)
        self.journal.append(f"ack {delivery.delivery_tag}")

    def serve(self) -> None:
        self.journal.append("serve")

    def close(self) -> None:
        self.closed = True


def delivery(
    tag: int,
    body: bytes = b"{}",
    *,
    queue: str = "ns.status-worker",
    exchange: str = "ns.commands",
    headers: Mapping[str, Any] | None = None,
    message_id: str | None = None,
) -> Delivery:
    """A delivery as the AMQP adapter would make it."""
    return Delivery(
        queue=queue,
        body=body,
        properties={"message_id": message_id or f"m-{tag}", "content_type": "application/json"},
        headers=dict(headers or {}),
        exchange=exchange,
        routing_key="order.status.change",
        delivery_tag=tag,
        content_type="application/json",
        content_encoding="utf-8",
    )
