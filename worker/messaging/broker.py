"""Connecting to RabbitMQ with kombu, and keeping the connection served."""

import time
from typing import Any

import amqp.exceptions
import kombu
import kombu.exceptions

from worker.config import Settings
from worker.errors import Unavailable
from worker.messaging.tls import split_tls
from worker.messaging.topology import Topology, declare_topology

MIN_READ_SECONDS = 0.001
IDLE_POLL_SECONDS = 0.25
"""How often a consumer waiting for its first message looks up: stop requests, heartbeats."""


class BrokerConnectionLost(Unavailable):
    """The broker connection failed while it was being kept alive."""

    def __init__(self, detail: str) -> None:
        super().__init__("RabbitMQ", detail)


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


def raw_body(message: Any) -> bytes:
    """The message body exactly as it was sent, whatever the client library decoded."""
    body = message.body
    if isinstance(body, str):
        return body.encode(message.content_encoding or "utf-8")
    return bytes(body)
