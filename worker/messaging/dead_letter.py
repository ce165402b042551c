"""Send a message that cannot be applied to the dead-letter exchange, with its reason.

The copy keeps the body byte for byte and every property that is safe to
keep, and adds headers that say what went wrong and where the message was.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from worker.messaging.broker import raw_body
from worker.messaging.poison import Poison
from worker.messaging.publisher import ConfirmedPublisher
from worker.messaging.topology import Topology

REASON_HEADER = "x-dead-letter-reason"
DETAIL_HEADER = "x-dead-letter-detail"
ORIGINAL_EXCHANGE_HEADER = "x-original-exchange"
ORIGINAL_ROUTING_KEY_HEADER = "x-original-routing-key"
MAX_DETAIL_LENGTH = 2000

# Properties that would change what happens to the copy: a TTL would expire it
# in the dead-letter queue, a user id would be refused unless it is ours.
PROPERTIES_KEPT_AS_HEADERS = ("expiration", "user_id")
PROPERTIES_SET_HERE = ("content_type", "content_encoding", "application_headers", "delivery_mode")


def carried_properties(message: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The properties and headers a copy of `message` keeps, and where it first came from.

    A message that came back from a retry tier still names the exchange and
    routing key it was first published with.
    """
    properties = dict(message.properties)
    headers = dict(message.headers or {})
    for name in PROPERTIES_KEPT_AS_HEADERS:
        value = properties.pop(name, None)
        if value is not None:
            headers[f"x-original-{name.replace('_', '-')}"] = value
    for name in PROPERTIES_SET_HERE:
        properties.pop(name, None)
    delivery = message.delivery_info
    headers.setdefault(ORIGINAL_EXCHANGE_HEADER, delivery.get("exchange", ""))
    headers.setdefault(ORIGINAL_ROUTING_KEY_HEADER, delivery.get("routing_key", ""))
    return properties, headers


def dead_letter(
    publisher: ConfirmedPublisher,
    topology: Topology,
    message: Any,
    source_queue: str,
    poison: Poison,
    *,
    extra_headers: Mapping[str, Any] | None = None,
) -> None:
    """Publish a copy of `message` to the dead-letter exchange; the caller then acks it."""
    properties, headers = carried_properties(message)
    headers.update(extra_headers or {})
    headers.update(
        {
            REASON_HEADER: poison.reason.value,
            DETAIL_HEADER: poison.detail[:MAX_DETAIL_LENGTH],
            "x-source-queue": source_queue,
            "x-dead-lettered-at": datetime.now(UTC).isoformat(),
        }
    )
    publisher.publish(
        raw_body(message),
        exchange=topology.dead_letter_exchange,
        routing_key=message.delivery_info.get("routing_key", ""),
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        headers=headers,
        properties=properties,
        # Unroutable would mean lost once the original is acked: make the broker say so.
        mandatory=True,
    )
