"""Publishing with publisher confirms: many messages, one wait, and exact accounting."""

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from worker.errors import Unavailable
from worker.kernel.delivery import OutgoingMessage
from worker.messaging.errors import DRIVER_ERRORS, translate, translated

PERSISTENT = 2


class PublishFailed(Unavailable):
    """The broker did not take what was published; reconnect and try again."""

    def __init__(self, detail: str) -> None:
        super().__init__("RabbitMQ", detail)


class ConfirmTimeout(PublishFailed):
    """The broker did not answer for every message in time."""


class MessageUnroutable(PublishFailed):
    """A mandatory message reached no queue and came back."""


class MessagesRefused(PublishFailed):
    """The broker refused (nacked) messages."""


class ConfirmedPublisher:
    """Publish on a channel in confirm mode, then wait until the broker has answered.

    Publishing does not wait; `wait_for_confirms` does, once for everything
    published since the last wait, so a batch costs one round trip. One
    publisher belongs to one channel: after a reconnection, make a new one.
    """

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        with translated():
            self._channel = connection.channel()
            self._channel.confirm_select()
        self._channel.events["basic_ack"].add(self._on_ack)
        self._channel.events["basic_nack"].add(self._on_nack)
        self._channel.events["basic_return"].add(self._on_return)
        self._next_tag = 1
        self._unconfirmed: set[int] = set()
        self._nacked: list[int] = []
        self._refused: set[int] = set()
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
        headers, properties = headers or {}, properties or {}
        message = OutgoingMessage(
            exchange, routing_key, body, content_type, content_encoding, headers, properties
        )
        return self._send(message, mandatory)

    def publish_message(self, message: OutgoingMessage) -> int:
        """Send `message` persistent and mandatory, and return its delivery tag (see `publish`)."""
        return self._send(message, mandatory=True)

    def _send(self, message: OutgoingMessage, mandatory: bool) -> int:
        message_properties = {"delivery_mode": PERSISTENT, **message.properties}
        priority = message_properties.pop("priority", None)
        prepared = self._channel.prepare_message(
            message.body,
            priority=priority,
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            headers=dict(message.headers),
            properties={k: v for k, v in message_properties.items() if v is not None},
        )
        try:  # not `with translated()`: this runs for every event the relay sends
            self._channel.basic_publish(
                prepared,
                exchange=message.exchange,
                routing_key=message.routing_key,
                mandatory=mandatory,
            )
        except DRIVER_ERRORS as error:
            raise translate(error) from error
        tag = self._next_tag
        self._unconfirmed.add(tag)
        self._next_tag += 1
        return tag

    @contextmanager
    def coalesced(self) -> Iterator[None]:
        """Hand everything published inside this block to the socket in one write.

        py-amqp writes each message to the socket as it is published: one system
        call per message, the relay's largest cost in its profile. Inside this
        block the frames are collected (copied: py-amqp reuses its frame buffer)
        and sent together at the end. Nothing is confirmed before it is sent, so
        the confirm accounting is unchanged.
        """
        transport = self._channel.connection.transport
        direct = transport._write
        pending: list[bytes] = []
        transport._write = lambda data: pending.append(bytes(data))
        try:
            yield
        finally:
            transport._write = direct
            if pending:
                transport.write(b"".join(pending))

    def wait_for_confirms(self, timeout: float = 30.0) -> list[int]:
        """Wait until the broker has answered for everything published; return refused tags.

        Raises ConfirmTimeout if answers do not come in time, and
        MessageUnroutable if a mandatory message reached no queue.
        """
        deadline = time.monotonic() + timeout
        while self._unconfirmed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConfirmTimeout(
                    f"{len(self._unconfirmed)} messages unconfirmed after {timeout}s"
                )
            try:
                with translated():
                    self._connection.drain_events(timeout=remaining)
            except TimeoutError:
                continue
        if self._returned:
            returned, self._returned = self._returned, []
            raise MessageUnroutable(f"no queue took: {'; '.join(returned)}")
        nacked, self._nacked = self._nacked, []
        self._refused.difference_update(nacked)
        return nacked

    def poll(self, timeout: float) -> None:
        """Read what the broker has sent (confirms among it) for up to `timeout` seconds."""
        try:
            self._connection.drain_events(timeout=timeout)
        except TimeoutError:
            return
        except DRIVER_ERRORS as error:
            raise translate(error) from error

    def settled_prefix(self, tags: list[int]) -> tuple[int, bool]:
        """How many of `tags`, in order, the broker has taken; and whether the next was refused.

        For publishers that keep a window of messages in flight and settle them
        in order as the confirms come, instead of waiting for all of them.
        """
        for taken, tag in enumerate(tags):
            if tag in self._refused:
                return taken, True
            if tag in self._unconfirmed:
                return taken, False
        return len(tags), False

    def forget(self, tags: list[int]) -> None:
        """Drop what is known of settled `tags`, once the caller has acted on it."""
        self._refused.difference_update(tags)

    def confirm_all(self, timeout: float = 30.0) -> None:
        """Wait for confirms; raise unless the broker took every message."""
        refused = self.wait_for_confirms(timeout)
        if refused:
            raise MessagesRefused(f"the broker refused messages {refused}")

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self._unconfirmed = {tag for tag in self._unconfirmed if tag > delivery_tag}
        else:
            self._unconfirmed.discard(delivery_tag)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            refused = sorted(tag for tag in self._unconfirmed if tag <= delivery_tag)
        else:
            refused = [delivery_tag]
        self._nacked += refused
        self._refused.update(refused)
        self._on_ack(delivery_tag, multiple)

    def _on_return(self, error: Exception, exchange: str, routing_key: str, _message: Any) -> None:
        self._returned.append(f"{exchange!r} {routing_key!r} ({error})")
