"""What a consumer does with a message it cannot process: the one place that decides.

Today a message that will never process (poison) goes straight to the
dead-letter exchange with its reason, and faults of the surroundings are
retried in place by the consumer, holding the message. A retry store with
backoff tiers would plug in here, behind the same interface.
"""

from typing import Any, Protocol

from worker.messaging.dead_letter import dead_letter
from worker.messaging.poison import Poison
from worker.messaging.publisher import ConfirmedPublisher
from worker.messaging.topology import Topology


class FailurePolicy(Protocol):
    def handle_poison(self, message: Any, poison: Poison) -> None:
        """Put `message` somewhere safe with its reason; the caller acks it afterwards."""


class DeadLetterAtOnce:
    """Copy poison to the dead-letter exchange and wait for the broker's confirm."""

    def __init__(
        self, publisher: ConfirmedPublisher, topology: Topology, source_queue: str
    ) -> None:
        self._publisher = publisher
        self._topology = topology
        self._source_queue = source_queue

    def handle_poison(self, message: Any, poison: Poison) -> None:
        dead_letter(self._publisher, self._topology, message, self._source_queue, poison)
        self._publisher.confirm_all()
