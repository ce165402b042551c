"""Connecting to RabbitMQ with kombu, keeping the connection served, reading messages."""

import threading
import time
from typing import Any

import amqp.exceptions
import kombu
import kombu.exceptions

from worker.config import Settings
from worker.messaging.decoding import Envelope
from worker.messaging.publisher import PublishFailed
from worker.messaging.tls import split_tls
from worker.messaging.topology import Topology, declare_topology

MIN_READ_SECONDS = 0.001


class BrokerConnectionLost(Exception):
    """The broker connection failed while it was being kept alive."""


BROKER_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    amqp.exceptions.AMQPError,
    kombu.exceptions.OperationalError,
    PublishFailed,
    BrokerConnectionLost,
)
"""Failures after which reconnecting and carrying on is the right thing to do.

A channel error counts too: the broker closed the channel (a consumer timeout,
an exchange deleted under us), and a new connection declares everything again.
A queue declared with other arguments is not among them: see TopologyMismatch.
"""


def connect_broker(settings: Settings, role: str) -> Any:
    """Open a kombu connection named after `role` (shown in the management UI)."""
    url, tls = split_tls(settings.amqp_url)
    connection = kombu.Connection(
        url,
        ssl=tls.kombu_options() if tls else False,
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
    try:
        while True:
            try:
                connection.drain_events(timeout=max(deadline - time.monotonic(), MIN_READ_SECONDS))
            except TimeoutError:
                break
            if time.monotonic() >= deadline:
                break
        connection.heartbeat_check()
    except (OSError, amqp.exceptions.AMQPError, kombu.exceptions.KombuError) as error:
        raise BrokerConnectionLost(repr(error)) from error


IDLE_POLL_SECONDS = 0.25
"""How often a consumer waiting for its first message looks up: stop requests, heartbeats."""


def collect_batch(
    connection: Any, buffer: list[Any], stop: threading.Event, size: int, wait_seconds: float
) -> list[Any]:
    """Wait for a batch: full at `size`, or `wait_seconds` after its first message.

    `buffer` is the list a kombu consumer appends its deliveries to; the batch
    is taken off its head in place.
    """
    deadline: float | None = None
    while not stop.is_set() and len(buffer) < size:
        if buffer and deadline is None:
            deadline = time.monotonic() + wait_seconds
        timeout = IDLE_POLL_SECONDS if deadline is None else deadline - time.monotonic()
        if timeout <= 0:
            break
        try:
            connection.drain_events(timeout=timeout)
        except TimeoutError:
            if deadline is None:
                connection.heartbeat_check()
    batch = buffer[:size]
    del buffer[:size]  # in place: the consumer appends to this very list
    return batch


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
