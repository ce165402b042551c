"""Turning a stored dead letter back into the message its producer sent.

A replay goes back only to the queue the message failed in, through
`{ns}.retry-return` as a message leaving a retry tier does, with its original
routing key: a replayed event is judged again by the rules worker without
reaching every other subscriber of `{ns}.events` a second time, and no header
of the stored message can send it anywhere else.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from worker.config import Settings
from worker.dead_letter_views import DeadLetterDetail
from worker.kernel.delivery import OutgoingMessage
from worker.messaging.amqp_json import from_json
from worker.messaging.broker import connect_declared
from worker.messaging.decoding import Envelope
from worker.messaging.errors import translated
from worker.messaging.failure_headers import (
    ORIGINAL_EXCHANGE_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER,
    is_failure_path_header,
)
from worker.messaging.publisher import ConfirmedPublisher, ConfirmTimeout
from worker.messaging.topology import RETRY_QUEUE_HEADER, Topology

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
class Replay(OutgoingMessage):
    """The message to publish again: where to, and exactly what."""

    queue: str
    """The only queue it reaches."""

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


class NotReplayable(Exception):
    """The entry names no queue of this service to go back to."""


def replay_queues(topology: Topology) -> tuple[str, ...]:
    """The queues a replay can go back to: those the failure path dead-letters from."""
    return (topology.status_worker_queue, topology.rules_queue)


def replay_of(entry: DeadLetterDetail, topology: Topology) -> Replay:
    """The original message of `entry`, addressed to the queue it failed in alone.

    It keeps its body, properties and the producer's own headers. The headers
    that say where it first came from are set from the entry, so that if it
    fails again its new entry names the same origin.
    """
    if entry.source_queue not in replay_queues(topology):
        raise NotReplayable(
            f"its source queue {entry.source_queue!r} is not one of "
            f"{', '.join(replay_queues(topology))}"
        )
    properties = from_json(entry.properties)
    headers = {
        name: value
        for name, value in from_json(entry.headers).items()
        if not is_failure_path_header(name)
    }
    headers[REPLAYED_FROM_HEADER] = entry.id
    headers[RETRY_QUEUE_HEADER] = entry.source_queue
    headers[ORIGINAL_EXCHANGE_HEADER] = entry.exchange
    headers[ORIGINAL_ROUTING_KEY_HEADER] = entry.routing_key
    return Replay(
        queue=entry.source_queue,
        exchange=topology.retry_return_exchange,
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


class BrokerReplayPublisher:
    """Publish one replay at a time and wait for the broker to confirm it.

    Raises `PublishFailed` (or its `ConfirmTimeout`) for a message the broker
    did not take, and the project's own `Unavailable` or `Misconfigured` when
    the broker fails the connection or closes the channel.
    """

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        with translated():
            self._publisher = ConfirmedPublisher(connection)

    def publish(self, message: Replay) -> None:
        """Publish `message` where it goes back to, and return once the broker took it."""
        with translated():
            try:
                self._publisher.publish_message(message)
                self._publisher.confirm_all()
            except ConfirmTimeout:
                # The old channel may still answer for that message: start afresh.
                self._publisher = ConfirmedPublisher(self._connection)
                raise


@contextmanager
def replay_publisher(settings: Settings, topology: Topology) -> Iterator[BrokerReplayPublisher]:
    """Connect to the broker, declare `topology`, and publish replays until the block ends."""
    with translated():
        connection = connect_declared(settings, "cli", topology)
    try:
        yield BrokerReplayPublisher(connection)
    finally:
        connection.release()
