"""Where a delivery goes when it cannot be handled now: a retry tier, or the dead letters.

Each consumer queue Q has one quorum queue per tier, `Q.retry.<delay>`, whose
`x-message-ttl` is that delay. A failing message is copied to the `{ns}.retry`
headers exchange with `retry-queue: Q` and `retry-delay: <tier>`; when its TTL
runs out the tier dead-letters it, at least once, to `{ns}.retry-return`, where
only Q is bound for `retry-queue: Q`, with its routing key untouched.
`x-retry-attempt` counts the failures so far; after the last tier the message
is dead-lettered as `retries_exhausted`. Poison goes to the dead-letter
exchange at once, with its reason. Both copies keep the body byte for byte and
every property that is safe to keep, are published `mandatory` (a copy no queue
takes must not be lost once the original is acked), and are confirmed by the
kernel before it acks the original.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker import durations
from worker.kernel.delivery import Delivery, OutgoingMessage
from worker.kernel.dispositions import Poison, RetryLater
from worker.kernel.ports import Publisher
from worker.messaging.failure_headers import (
    ATTEMPT_HEADER,
    DEAD_LETTERED_AT_HEADER,
    DETAIL_HEADER,
    FIRST_FAILED_HEADER,
    LAST_FAILURE_HEADER,
    MAX_ATTEMPTS,
    MAX_DETAIL_LENGTH,
    ORIGINAL_EXCHANGE_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER,
    REASON_HEADER,
    SOURCE_QUEUE_HEADER,
    failed_attempts,
    is_broker_header,
    is_failure_path_header,
)
from worker.messaging.poison import DeadLetterReason
from worker.messaging.topology import RETRY_DELAY_HEADER, RETRY_QUEUE_HEADER, Topology

log = logging.getLogger(__name__)

# Properties that would change what happens to a copy: a TTL would expire it in
# its tier or the dead letters, a user id would be refused unless it is ours.
PROPERTIES_KEPT_AS_HEADERS = ("expiration", "user_id")
PROPERTIES_SET_HERE = ("content_type", "content_encoding", "application_headers", "delivery_mode")


@dataclass(frozen=True)
class WaitInTier:
    """The next step of a failing message: wait `delay_ms` in its tier, as attempt `attempt`."""

    attempt: int
    delay_ms: int


@dataclass(frozen=True)
class Exhausted:
    """Every tier has been tried: the message is dead-lettered after `attempts` failures."""

    attempts: int


def next_step(
    headers: Mapping[str, Any] | None, delays_ms: tuple[int, ...], at_least: int = 0
) -> WaitInTier | Exhausted:
    """Where a message goes after one more passing failure (counting at least `at_least`)."""
    done = max(failed_attempts(headers), min(at_least, MAX_ATTEMPTS))
    if done >= len(delays_ms):
        return Exhausted(done + 1)
    return WaitInTier(done + 1, delays_ms[done])


def came_back_from_retry(delivery: Delivery, topology: Topology) -> bool:
    """Whether `delivery` came from a retry tier, so its failure headers are ours."""
    return delivery.exchange == topology.retry_return_exchange


def trusted_headers(delivery: Delivery, topology: Topology) -> dict[str, Any]:
    """The headers of `delivery`, without failure-path headers it cannot have been given by us."""
    headers = dict(delivery.headers)
    if came_back_from_retry(delivery, topology):
        return headers
    return {name: value for name, value in headers.items() if not is_failure_path_header(name)}


def attempts_of(delivery: Delivery, topology: Topology) -> int:
    """The failures `delivery` has had so far, as its next failure will count them."""
    return failed_attempts(trusted_headers(delivery, topology))


def carried_properties(
    delivery: Delivery, topology: Topology
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The properties and headers a copy of `delivery` keeps, and where it first came from.

    A message that came back from a retry tier still names the exchange and
    routing key it was first published with; any other names where it was
    delivered from, whatever its producer wrote in those headers.
    """
    properties = dict(delivery.properties)
    headers = trusted_headers(delivery, topology)
    for name in PROPERTIES_KEPT_AS_HEADERS:
        value = properties.pop(name, None)
        if value is not None:
            headers[f"x-original-{name.replace('_', '-')}"] = value
    for name in PROPERTIES_SET_HERE:
        properties.pop(name, None)
    headers.setdefault(ORIGINAL_EXCHANGE_HEADER, delivery.exchange)
    headers.setdefault(ORIGINAL_ROUTING_KEY_HEADER, delivery.routing_key)
    return properties, headers


class FailureRouting:
    """Sends what a consumer cannot handle to its queue's next tier or to the dead letters.

    `route` only publishes; the kernel then waits for every confirm, and only
    then acks the originals.
    """

    def __init__(self, topology: Topology) -> None:
        self._topology = topology

    def route(self, publisher: Publisher, delivery: Delivery, failure: Poison | RetryLater) -> str:
        """Publish the copy that keeps `delivery` safe; return where it went."""
        if isinstance(failure, Poison):
            return self._dead_letter(publisher, delivery, failure)
        step = next_step(
            trusted_headers(delivery, self._topology),
            self._topology.retry_delays_ms,
            failure.at_least_attempts,
        )
        if isinstance(step, Exhausted):
            exhausted = Poison(
                DeadLetterReason.RETRIES_EXHAUSTED,
                f"failed {step.attempts} times; last: {failure.reason}: {failure.detail}",
            )
            return self._dead_letter(
                publisher, delivery, exhausted, {ATTEMPT_HEADER: step.attempts}
            )
        return self._wait(publisher, delivery, failure, step)

    def _dead_letter(
        self,
        publisher: Publisher,
        delivery: Delivery,
        poison: Poison,
        extra_headers: Mapping[str, Any] | None = None,
    ) -> str:
        properties, headers = carried_properties(delivery, self._topology)
        headers.update(extra_headers or {})
        headers.update(
            {
                REASON_HEADER: poison.reason.value,
                DETAIL_HEADER: poison.detail[:MAX_DETAIL_LENGTH],
                SOURCE_QUEUE_HEADER: delivery.queue,
                DEAD_LETTERED_AT_HEADER: datetime.now(UTC).isoformat(),
            }
        )
        self._publish(publisher, delivery, self._topology.dead_letter_exchange, headers, properties)
        log.warning(
            "message dead-lettered: %s",
            poison.reason.value,
            extra={
                **delivery.log_context(),
                "reason": poison.reason.value,
                "detail": poison.detail,
                "source_queue": delivery.queue,
            },
        )
        return self._topology.dead_letter_exchange

    def _wait(
        self, publisher: Publisher, delivery: Delivery, failure: RetryLater, step: WaitInTier
    ) -> str:
        properties, headers = carried_properties(delivery, self._topology)
        headers = {name: value for name, value in headers.items() if not is_broker_header(name)}
        headers.setdefault(FIRST_FAILED_HEADER, datetime.now(UTC).isoformat())
        headers.update(
            {
                ATTEMPT_HEADER: step.attempt,
                LAST_FAILURE_HEADER: f"{failure.reason}: {failure.detail}"[:MAX_DETAIL_LENGTH],
                RETRY_QUEUE_HEADER: delivery.queue,
                RETRY_DELAY_HEADER: durations.label(step.delay_ms),
            }
        )
        self._publish(publisher, delivery, self._topology.retry_exchange, headers, properties)
        tier = self._topology.retry_queue(delivery.queue, step.delay_ms)
        log.warning(
            "message will be tried again in %s (attempt %d): %s",
            durations.label(step.delay_ms),
            step.attempt,
            failure.reason,
            extra={
                **delivery.log_context(),
                "reason": failure.reason,
                "detail": failure.detail,
                "attempt": step.attempt,
                "tier": tier,
            },
        )
        return tier

    @staticmethod
    def _publish(
        publisher: Publisher,
        delivery: Delivery,
        exchange: str,
        headers: dict[str, Any],
        properties: dict[str, Any],
    ) -> None:
        """Publish a copy of `delivery` (body, routing key, content type) to `exchange`."""
        publisher.publish_message(
            OutgoingMessage(
                exchange=exchange,
                routing_key=delivery.routing_key,
                body=delivery.body,
                content_type=delivery.content_type,
                content_encoding=delivery.content_encoding,
                headers=headers,
                properties=properties,
            )
        )
