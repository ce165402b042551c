"""Turning a stored dead letter back into the message its producer sent."""

from dataclasses import dataclass
from typing import Any

from worker.dead_letter_views import DeadLetterDetail
from worker.messaging.amqp_json import from_json
from worker.messaging.decoding import Envelope
from worker.messaging.topology import RETRY_DELAY_HEADER, RETRY_QUEUE_HEADER

ADDED_ON_THE_WAY = (
    "x-dead-letter-",
    "x-original-",
    "x-source-queue",
    "x-dead-lettered-at",
    "x-death",
    "x-first-death-",
    "x-last-death-",
    "x-delivery-count",
    "x-retry-",
    "x-first-failed-at",
    RETRY_QUEUE_HEADER,
    RETRY_DELAY_HEADER,
)
"""Headers the failure path added; a replay starts without them."""

REPLAYED_FROM_HEADER = "x-replayed-from"
"""The store id a replayed message came from, so a second failure can be traced to the first."""

NOT_REPLAYED_PROPERTIES = (
    "content_type",
    "content_encoding",
    "delivery_mode",
    "expiration",
    "user_id",
)
"""Set by the publisher, or would make the replay expire or be refused."""


@dataclass(frozen=True)
class Replay:
    """The message to publish again: where to, and exactly what."""

    exchange: str
    routing_key: str
    body: bytes
    content_type: str | None
    content_encoding: str | None
    headers: dict[str, Any]
    properties: dict[str, Any]

    def envelope(self) -> Envelope:
        """The replay as the status worker's decoder will see it."""
        return Envelope(
            body=self.body,
            routing_key=self.routing_key,
            content_type=self.content_type,
            content_encoding=self.content_encoding,
            type_name=self.properties.get("type"),
            message_id=self.properties.get("message_id"),
            correlation_id=self.properties.get("correlation_id"),
            headers=self.headers,
        )


def replay_of(entry: DeadLetterDetail) -> Replay:
    """The original message of `entry`: its body, properties and the producer's own headers."""
    properties = from_json(entry.properties)
    headers = {
        name: value
        for name, value in from_json(entry.headers).items()
        if not name.startswith(ADDED_ON_THE_WAY)
    }
    headers[REPLAYED_FROM_HEADER] = entry.id
    return Replay(
        exchange=entry.exchange,
        routing_key=entry.routing_key,
        body=entry.body,
        content_type=properties.get("content_type"),
        content_encoding=properties.get("content_encoding"),
        headers=headers,
        properties={
            name: value
            for name, value in properties.items()
            if name not in NOT_REPLAYED_PROPERTIES and value is not None
        },
    )
