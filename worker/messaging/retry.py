"""Retry tiers: a message that failed for a passing reason waits, then is tried again.

Each consumer queue Q has one quorum queue per tier, `Q.retry.<delay>`, whose
`x-message-ttl` is that delay. A failing message is copied (confirmed) to the
`{ns}.retry` headers exchange with `retry-queue: Q` and `retry-delay: <tier>`,
and only then acked. When its TTL runs out the tier dead-letters it, at least
once, to `{ns}.retry-return`, where only Q is bound for `retry-queue: Q`; its
routing key is untouched, so the consumer sees the message as it was sent.
`x-retry-attempt` counts the failures so far; after the last tier the message
is dead-lettered as `retries_exhausted`.

`FailureRouter` is the one entry point for every consumer (the status worker,
the rules worker): `route(publisher, message, failure)` with a `Poison` (dead
letter now) or a `RetryLater` (wait in the next tier).
"""

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from worker import durations
from worker.messaging.broker import raw_body
from worker.messaging.dead_letter import (
    MAX_DETAIL_LENGTH,
    carried_properties,
    dead_letter,
    failure_headers,
)
from worker.messaging.poison import DeadLetterReason, Poison
from worker.messaging.publisher import ConfirmedPublisher
from worker.messaging.topology import RETRY_DELAY_HEADER, RETRY_QUEUE_HEADER, Topology

log = logging.getLogger(__name__)

ATTEMPT_HEADER = "x-retry-attempt"
"""How many times handling this message has failed for a passing reason."""
FIRST_FAILED_HEADER = "x-first-failed-at"
LAST_FAILURE_HEADER = "x-retry-last-failure"

BROKER_HEADERS = ("x-death", "x-first-death-", "x-last-death-", "x-delivery-count")
"""Headers the broker writes; a fresh copy starts without them."""


@dataclass(frozen=True)
class RetryLater:
    """Handling failed for a reason that may pass (a lock, a deadlock, a refused publish)."""

    reason: str
    detail: str
    at_least_attempts: int = 0
    """Count the message as having failed at least this often: a message held back behind
    another takes that one's count, so it waits in the same tier or a later one, never an
    earlier one, and is dead-lettered with it when that one has used up every tier."""


@dataclass(frozen=True)
class WaitInTier:
    """The next step of a failing message: wait `delay_ms` in its tier, as attempt `attempt`."""

    attempt: int
    delay_ms: int


@dataclass(frozen=True)
class Exhausted:
    """Every tier has been tried: the message is dead-lettered after `attempts` failures."""

    attempts: int


MAX_ATTEMPTS = 2**31 - 1
"""The most failures a count may claim; a producer's larger number is read as this."""


def failed_attempts(headers: Mapping[str, Any] | None) -> int:
    """The failures counted in `headers` so far; never raises.

    The header arrives from anyone who can publish: a missing, negative,
    fractional, non-finite or unreadable count is zero, and one beyond
    `MAX_ATTEMPTS` is read as that.
    """
    count = _whole_number((headers or {}).get(ATTEMPT_HEADER))
    return 0 if count is None or count < 0 else min(count, MAX_ATTEMPTS)


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str):
        text = value.strip()
        # Bounded before int(): a long enough digit string makes int() raise.
        return int(text) if text.isascii() and text.isdigit() and len(text) <= 12 else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    return None


def next_step(
    headers: Mapping[str, Any] | None, delays_ms: tuple[int, ...], at_least: int = 0
) -> WaitInTier | Exhausted:
    """Where a message goes after one more passing failure (counting at least `at_least`)."""
    done = max(failed_attempts(headers), min(at_least, MAX_ATTEMPTS))
    if done >= len(delays_ms):
        return Exhausted(done + 1)
    return WaitInTier(done + 1, delays_ms[done])


def attempts_of(message: Any, topology: Topology) -> int:
    """The failures `message` has had so far, as its next failure will count them."""
    return failed_attempts(failure_headers(message, topology))


def is_broker_header(name: str) -> bool:
    return name.startswith(BROKER_HEADERS)


class FailureRouter:
    """Sends the messages a consumer of `source_queue` cannot handle to a tier or dead letters.

    The caller publishes any number of messages, then calls
    `publisher.confirm_all()`, and only then acks them.
    """

    def __init__(self, topology: Topology, source_queue: str) -> None:
        self._topology = topology
        self._source_queue = source_queue

    def route(
        self, publisher: ConfirmedPublisher, message: Any, failure: Poison | RetryLater
    ) -> None:
        """Dead-letter poison now; send a passing failure to its next tier, or give up."""
        if isinstance(failure, Poison):
            self._dead_letter(publisher, message, failure)
            return
        step = next_step(
            failure_headers(message, self._topology),
            self._topology.retry_delays_ms,
            failure.at_least_attempts,
        )
        if isinstance(step, Exhausted):
            self._dead_letter(
                publisher,
                message,
                Poison(
                    DeadLetterReason.RETRIES_EXHAUSTED,
                    f"failed {step.attempts} times; last: {failure.reason}: {failure.detail}",
                ),
                attempts=step.attempts,
            )
            return
        self._wait(publisher, message, failure, step)

    def _dead_letter(
        self,
        publisher: ConfirmedPublisher,
        message: Any,
        poison: Poison,
        attempts: int | None = None,
    ) -> None:
        extra = {ATTEMPT_HEADER: attempts} if attempts is not None else None
        dead_letter(
            publisher, self._topology, message, self._source_queue, poison, extra_headers=extra
        )
        log.warning(
            "dead-lettered message",
            extra={
                **_context(message),
                "reason": poison.reason.value,
                "detail": poison.detail,
                "source_queue": self._source_queue,
            },
        )

    def _wait(
        self, publisher: ConfirmedPublisher, message: Any, failure: RetryLater, step: WaitInTier
    ) -> None:
        properties, headers = carried_properties(message, self._topology)
        tier = durations.label(step.delay_ms)
        headers = {name: value for name, value in headers.items() if not is_broker_header(name)}
        headers.setdefault(FIRST_FAILED_HEADER, datetime.now(UTC).isoformat())
        headers.update(
            {
                ATTEMPT_HEADER: step.attempt,
                LAST_FAILURE_HEADER: f"{failure.reason}: {failure.detail}"[:MAX_DETAIL_LENGTH],
                RETRY_QUEUE_HEADER: self._source_queue,
                RETRY_DELAY_HEADER: tier,
            }
        )
        publisher.publish(
            raw_body(message),
            exchange=self._topology.retry_exchange,
            routing_key=message.delivery_info.get("routing_key", ""),
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            headers=headers,
            properties=properties,
            mandatory=True,  # a tier that is missing must not swallow the message
        )
        log.warning(
            "retrying later",
            extra={
                **_context(message),
                "reason": failure.reason,
                "detail": failure.detail,
                "attempt": step.attempt,
                "tier": self._topology.retry_queue(self._source_queue, step.delay_ms),
            },
        )


def _context(message: Any) -> dict[str, Any]:
    return {
        "message_id": message.properties.get("message_id"),
        "correlation_id": message.properties.get("correlation_id"),
    }
