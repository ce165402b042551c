"""The benchmark's event consumer: when did each command's event arrive?

A queue of its own, bound to every event, consumed without acks (the broker
forgets a message once sent), so that observing takes as little as possible of
the CPU the workers share. It is exclusive: it goes with the connection.
"""

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pika


@dataclass
class Observed:
    """Events seen, keyed by the command that caused them."""

    first_seen: dict[str, float] = field(default_factory=dict)
    types: Counter[str] = field(default_factory=Counter)
    repeats: int = 0
    """Deliveries of an event id seen before (the relay may repeat after a crash)."""


class EventObserver:
    """Declares its queue on creation, so no event published afterwards is missed."""

    def __init__(self, amqp_url: str, events_exchange: str, queue: str) -> None:
        self._connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self._channel: Any = self._connection.channel()
        self._queue = queue
        self._channel.queue_declare(queue, durable=False, exclusive=True)
        self._channel.queue_bind(queue, events_exchange, routing_key="#")
        self._event_ids: set[str] = set()

    def collect(self, observed: Observed, causes: set[str], idle_seconds: float) -> bool:
        """Consume until an event for every command in `causes` arrived; False on a stall."""
        missing = set(causes) - observed.first_seen.keys()
        last_progress = time.monotonic()
        for method, properties, _body in self._channel.consume(
            self._queue, auto_ack=True, inactivity_timeout=0.2
        ):
            now = time.monotonic()
            if method is None:
                if now - last_progress > idle_seconds:
                    break
                continue
            if properties.message_id in self._event_ids:
                observed.repeats += 1
                continue
            self._event_ids.add(properties.message_id)
            observed.types[properties.type] += 1
            cause = (properties.headers or {}).get("causation_id")
            if cause is not None and cause not in observed.first_seen:
                observed.first_seen[cause] = now
                missing.discard(cause)
                last_progress = now
            if not missing:
                break
        self._channel.cancel()
        return not missing

    def close(self) -> None:
        if self._connection.is_open:
            self._connection.close()
