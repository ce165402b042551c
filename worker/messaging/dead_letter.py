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
from worker.messaging.topology import RETRY_DELAY_HEADER, RETRY_QUEUE_HEADER, Topology

REASON_HEADER = "x-dead-letter-reason"
DETAIL_HEADER = "x-dead-letter-detail"
ORIGINAL_EXCHANGE_HEADER = "x-original-exchange"
ORIGINAL_ROUTING_KEY_HEADER = "x-original-routing-key"
MAX_DETAIL_LENGTH = 2000

FAILURE_PATH_HEADERS = (
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
"""Headers the failure path writes. Only a message that came back from a retry tier
may carry them in: from anyone else they are forgeries, and a replay would trust them."""

# Properties that would change what happens to the copy: a TTL would expire it
# in the dead-letter queue, a user id would be refused unless it is ours.
PROPERTIES_KEPT_AS_HEADERS = ("expiration", "user_id")
PROPERTIES_SET_HERE = ("content_type", "content_encoding", "application_headers", "delivery_mode")


def came_back_from_retry(message: Any, topology: Topology) -> bool:
    """Whether `message` was delivered by a retry tier, so its failure headers are ours."""
    return bool(message.delivery_info.get("exchange") == topology.retry_return_exchange)


def failure_headers(message: Any, topology: Topology) -> dict[str, Any]:
    """The headers of `message`, without failure-path headers it cannot have been given by us."""
    headers = dict(message.headers or {})
    if came_back_from_retry(message, topology):
        return headers
    return {name: value for name, value in headers.items() if not is_failure_path_header(name)}


def is_failure_path_header(name: str) -> bool:
    return name.startswith(FAILURE_PATH_HEADERS)


def carried_properties(message: Any, topology: Topology) -> tuple[dict[str, Any], dict[str, Any]]:
    """The properties and headers a copy of `message` keeps, and where it first came from.

    A message that came back from a retry tier still names the exchange and
    routing key it was first published with; any other names where it was
    delivered from, whatever its producer wrote in those headers.
    """
    properties = dict(message.properties)
    headers = failure_headers(message, topology)
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
    properties, headers = carried_properties(message, topology)
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
