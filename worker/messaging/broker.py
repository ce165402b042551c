"""Connecting to RabbitMQ with kombu, and publishing with publisher confirms."""

import time
from collections.abc import Mapping
from typing import Any

import amqp.exceptions
import kombu
import kombu.exceptions

from worker.config import Settings
from worker.messaging.decoding import Envelope
from worker.messaging.topology import Topology, declare_topology

PERSISTENT = 2
MIN_READ_SECONDS = 0.001


class PublishNotConfirmed(Exception):
    """The broker refused (nacked) a message, or did not confirm it in time."""


BROKER_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    amqp.exceptions.ConnectionError,
    amqp.exceptions.RecoverableChannelError,
    kombu.exceptions.OperationalError,
    PublishNotConfirmed,
)
"""Failures after which reconnecting and carrying on is the right thing to do."""


def connect_broker(settings: Settings, role: str) -> Any:
    """Open a kombu connection named after `role` (shown in the management UI)."""
    connection = kombu.Connection(
        settings.amqp_url,
        heartbeat=settings.heartbeat_seconds,
        connect_timeout=5,
        transport_options={
            "client_properties": {"connection_name": f"order-status:{settings.namespace}:{role}"}
        },
    )
    connection.connect()
    return connection


def connect_declared(settings: Settings, role: str, topology: Topology) -> Any:
    """Connect, declare `topology`, and hand over the open connection."""
    connection = connect_broker(settings, role)
    try:
        declare_topology(connection.default_channel, topology)
    except BaseException:
        connection.release()
        raise
    return connection


def serve(connection: Any, seconds: float = 0.0) -> None:
    """Read what the broker sent for up to `seconds`, then send our heartbeat if due.

    Reading matters as much as sending: the broker's heartbeats only count once
    read, and a connection that reads nothing for two intervals is closed.
    Deliveries and confirms read here go to their usual callbacks.
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            connection.drain_events(timeout=max(deadline - time.monotonic(), MIN_READ_SECONDS))
        except TimeoutError:
            break
        if time.monotonic() >= deadline:
            break
    connection.heartbeat_check()


def raw_body(message: Any) -> bytes:
    """The message body exactly as it was sent, whatever the client library decoded."""
    body = message.body
    if isinstance(body, str):
        return body.encode(message.content_encoding or "utf-8")
    return bytes(body)


def envelope_of(message: Any) -> Envelope:
    """Describe a kombu message in the terms the decoder uses."""
    properties = message.properties
    return Envelope(
        body=raw_body(message),
        routing_key=message.delivery_info.get("routing_key", ""),
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        type_name=properties.get("type"),
        message_id=properties.get("message_id"),
        correlation_id=properties.get("correlation_id"),
        headers=message.headers,
    )


class ConfirmedPublisher:
    """Publish on a channel in confirm mode, then wait until the broker has every message.

    Publishing does not wait; `wait_for_confirms` does, once for everything
    published since the last wait, so a batch costs one round trip. A message
    published as `mandatory` that no queue takes comes back from the broker,
    and that fails the wait: for us, an unroutable message is a lost one.
    """

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._channel = connection.channel()
        self._channel.confirm_select()
        self._channel.events["basic_ack"].add(self._on_ack)
        self._channel.events["basic_nack"].add(self._on_nack)
        self._channel.events["basic_return"].add(self._on_return)
        self._next_tag = 1
        self._unconfirmed: set[int] = set()
        self._nacked: list[int] = []
        self._returned: list[str] = []

    def publish(
        self,
        body: bytes,
        *,
        exchange: str,
        routing_key: str,
        content_type: str | None = "application/json",
        content_encoding: str | None = "utf-8",
        headers: Mapping[str, Any] | None = None,
        properties: Mapping[str, Any] | None = None,
        mandatory: bool = False,
    ) -> int:
        """Send one persistent message and return its delivery tag.

        The message is safe only once `wait_for_confirms` has returned without
        listing that tag.
        """
        message_properties = {"delivery_mode": PERSISTENT, **(properties or {})}
        priority = message_properties.pop("priority", None)
        message = self._channel.prepare_message(
            body,
            priority=priority,
            content_type=content_type,
            content_encoding=content_encoding,
            headers=dict(headers or {}),
            properties={k: v for k, v in message_properties.items() if v is not None},
        )
        self._channel.basic_publish(
            message, exchange=exchange, routing_key=routing_key, mandatory=mandatory
        )
        tag = self._next_tag
        self._unconfirmed.add(tag)
        self._next_tag += 1
        return tag

    def wait_for_confirms(self, timeout: float = 30.0) -> list[int]:
        """Wait until the broker has answered for everything published; return refused tags.

        Raises PublishNotConfirmed if answers do not come in time, or if a
        mandatory message could not be routed.
        """
        deadline = time.monotonic() + timeout
        while self._unconfirmed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishNotConfirmed(
                    f"{len(self._unconfirmed)} messages unconfirmed after {timeout}s"
                )
            try:
                self._connection.drain_events(timeout=remaining)
            except TimeoutError:
                continue
        if self._returned:
            returned, self._returned = self._returned, []
            raise PublishNotConfirmed(f"no queue took: {'; '.join(returned)}")
        nacked, self._nacked = self._nacked, []
        return nacked

    def confirm_all(self, timeout: float = 30.0) -> None:
        """Wait for confirms; raise PublishNotConfirmed unless the broker took everything."""
        refused = self.wait_for_confirms(timeout)
        if refused:
            raise PublishNotConfirmed(f"the broker refused messages {refused}")

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self._unconfirmed = {tag for tag in self._unconfirmed if tag > delivery_tag}
        else:
            self._unconfirmed.discard(delivery_tag)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self._nacked += sorted(tag for tag in self._unconfirmed if tag <= delivery_tag)
        else:
            self._nacked.append(delivery_tag)
        self._on_ack(delivery_tag, multiple)

    def _on_return(self, error: Exception, exchange: str, routing_key: str, _message: Any) -> None:
        self._returned.append(f"{exchange!r} {routing_key!r} ({error})")
