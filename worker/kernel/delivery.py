"""Messages as the kernel and the handlers see them: bytes and plain data, no client library."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker.messaging.decoding import Envelope


@dataclass(frozen=True)
class Delivery:
    """One message delivered from a queue, as it was sent.

    `properties` are the AMQP basic properties (with `application_headers`, as
    the broker sent them); `headers` are those application headers. Acking is
    the kernel's job, through the session that received it (`delivery_tag`).
    """

    queue: str
    """The queue it was consumed from: where a retry returns it, what a dead letter names."""
    body: bytes
    properties: Mapping[str, Any]
    headers: Mapping[str, Any]
    exchange: str
    routing_key: str
    delivery_tag: int
    redelivered: bool = False
    content_type: str | None = None
    content_encoding: str | None = None

    @property
    def message_id(self) -> str | None:
        value = self.properties.get("message_id")
        return None if value is None else str(value)

    @property
    def correlation_id(self) -> str | None:
        value = self.properties.get("correlation_id")
        return None if value is None else str(value)

    def envelope(self) -> Envelope:
        """The delivery in the terms the decoders use."""
        type_name = self.properties.get("type")
        return Envelope(
            body=self.body,
            routing_key=self.routing_key,
            content_type=self.content_type,
            content_encoding=self.content_encoding,
            type_name=None if type_name is None else str(type_name),
            message_id=self.message_id,
            correlation_id=self.correlation_id,
            headers=self.headers,
        )

    def log_context(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "correlation_id": self.correlation_id}


@dataclass(frozen=True)
class OutgoingMessage:
    """A message to publish: where to, and exactly what (its body byte for byte)."""

    exchange: str
    routing_key: str
    body: bytes
    content_type: str | None
    content_encoding: str | None
    headers: Mapping[str, Any]
    properties: Mapping[str, Any]
