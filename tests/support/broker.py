"""Talking to RabbitMQ from tests the way other systems do: plain pika."""

import json
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import amqp
import kombu
import pika
import pika.exceptions

from worker.messaging.topology import Topology


@dataclass(frozen=True)
class Received:
    routing_key: str
    properties: pika.BasicProperties
    body: bytes

    @property
    def headers(self) -> dict[str, Any]:
        return dict(self.properties.headers or {})

    def json(self) -> Any:
        return json.loads(self.body)


class QueueReader:
    """A queue of the test's own, bound to an exchange, read without consuming forever."""

    def __init__(self, amqp_url: str, exchange: str, routing_key: str, name: str) -> None:
        self._connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self._channel = self._connection.channel()
        self.queue = name
        self._channel.queue_declare(name, exclusive=True, auto_delete=True)
        self._channel.queue_bind(name, exchange, routing_key=routing_key)

    def take(self, count: int, timeout: float = 15.0) -> list[Received]:
        """Wait for `count` messages; fail with what arrived if fewer come in time."""
        received: list[Received] = []
        deadline = time.monotonic() + timeout
        while len(received) < count and time.monotonic() < deadline:
            method, properties, body = self._channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                self._connection.sleep(0.02)
                continue
            received.append(Received(method.routing_key, properties, body))
        if len(received) < count:
            raise AssertionError(f"expected {count} messages on {self.queue}, got {received!r}")
        return received

    def take_until(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 15.0
    ) -> list[Received]:
        received: list[Received] = []
        deadline = time.monotonic() + timeout
        while not predicate(received):
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met on {self.queue}; got {received!r}")
            method, properties, body = self._channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                self._connection.sleep(0.02)
                continue
            received.append(Received(method.routing_key, properties, body))
        return received

    def drain(self, settle_seconds: float = 0.3) -> list[Received]:
        """Everything that arrives until the queue stays empty for `settle_seconds`."""
        received: list[Received] = []
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < settle_seconds:
            method, properties, body = self._channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                self._connection.sleep(0.02)
                continue
            received.append(Received(method.routing_key, properties, body))
            quiet_since = time.monotonic()
        return received

    def close(self) -> None:
        if self._connection.is_open:
            self._connection.close()


def publish_raw(
    amqp_url: str,
    exchange: str,
    routing_key: str,
    body: bytes,
    **properties: Any,
) -> None:
    """Publish exactly these bytes and properties, as a hand-written producer would."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            exchange,
            routing_key,
            body,
            pika.BasicProperties(**properties),
            mandatory=True,
        )
    finally:
        connection.close()


def publish_amqp_raw(
    amqp_url: str, exchange: str, routing_key: str, body: bytes, **properties: Any
) -> None:
    """As `publish_raw`, through py-amqp, which can send header values pika cannot (doubles)."""
    with kombu.Connection(amqp_url) as connection:
        channel = connection.default_channel
        channel.confirm_select()
        channel.basic_publish(
            amqp.Message(body, **properties), exchange, routing_key, mandatory=True
        )


def message_count(amqp_url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        declared = connection.channel().queue_declare(queue, passive=True)
        return int(declared.method.message_count)
    finally:
        connection.close()


def delete_topology(amqp_url: str, topology: Topology) -> None:
    """Remove every queue and exchange the namespace declared."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        for queue in topology.queues():
            channel = connection.channel()
            with suppress(pika.exceptions.ChannelClosed):
                channel.queue_delete(queue.name)
        for exchange in topology.exchanges():
            channel = connection.channel()
            with suppress(pika.exceptions.ChannelClosed):
                channel.exchange_delete(exchange.name)
    finally:
        connection.close()


def unique_queue_name(topology: Topology, purpose: str) -> str:
    return f"{topology.namespace}.test-{purpose}-{uuid4().hex[:6]}"
