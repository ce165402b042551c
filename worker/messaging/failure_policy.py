"""What a consumer does with a message it cannot process: the one place that decides.

A message that will never process (poison) goes straight to the dead-letter
exchange with its reason. One that failed for a reason that may pass (a lock,
a deadlock) waits in the consumer queue's retry tiers and comes back; after
the last tier it is dead-lettered as `retries_exhausted`. Both go through the
same `FailureRouter` as the status worker's, and are confirmed before the
caller acks.
"""

from typing import Any, Protocol

from worker.messaging.poison import Poison
from worker.messaging.publisher import ConfirmedPublisher
from worker.messaging.retry import FailureRouter, RetryLater
from worker.messaging.topology import Topology


class FailurePolicy(Protocol):
    def handle_poison(self, message: Any, poison: Poison) -> None:
        """Put `message` somewhere safe with its reason; the caller acks it afterwards."""

    def retry_later(self, message: Any, failure: RetryLater) -> None:
        """Send `message` to wait in its next retry tier; the caller acks it afterwards."""


class RouteFailures:
    """Route each failing message through a `FailureRouter` and wait for the broker's confirm."""

    def __init__(
        self, publisher: ConfirmedPublisher, topology: Topology, source_queue: str
    ) -> None:
        self._publisher = publisher
        self._router = FailureRouter(topology, source_queue)

    def handle_poison(self, message: Any, poison: Poison) -> None:
        self._router.route(self._publisher, message, poison)
        self._publisher.confirm_all()

    def retry_later(self, message: Any, failure: RetryLater) -> None:
        self._router.route(self._publisher, message, failure)
        self._publisher.confirm_all()
