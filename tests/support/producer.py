"""A producer that remembers what the broker confirmed, in the order it confirmed it."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import kombu

from contracts import COMMANDS_BY_TYPE, Command
from tests.support.history import Confirmed
from worker.messaging.publisher import ConfirmedPublisher, PublishFailed
from worker.messaging.topology import Topology

WINDOW = 500


@dataclass(frozen=True)
class RawMessage:
    """Bytes and properties exactly as a producer might send them, good or bad."""

    body: bytes
    routing_key: str
    message_id: str
    content_type: str | None = "application/json"
    content_encoding: str | None = "utf-8"
    type_name: str | None = None
    headers: Mapping[str, Any] | None = None


class ConfirmingProducer:
    """Publishes commands in windows of confirms; keeps the confirmed ones with their position.

    A window whose confirms never come (the connection broke) is kept apart as
    `unconfirmed`: the broker may or may not have taken those messages.
    """

    def __init__(self, amqp_url: str, topology: Topology) -> None:
        self._amqp_url = amqp_url
        self._exchange = topology.commands_exchange
        self.confirmed: list[Confirmed] = []
        self.unconfirmed: list[Confirmed] = []
        self.nacked: list[Command] = []
        self.raw_confirmed: list[RawMessage] = []
        self._position = 0
        self.confirm_timeout = 60.0

    def send(self, commands: Iterable[Command], window: int = WINDOW) -> None:
        """Publish every command; return once each is confirmed, refused or unconfirmable."""
        pending = list(commands)
        with kombu.Connection(self._amqp_url, heartbeat=0) as connection:
            publisher = ConfirmedPublisher(connection)
            for start in range(0, len(pending), window):
                self._send_window(publisher, pending[start : start + window])

    def send_raw(
        self, messages: Iterable[RawMessage], window: int = WINDOW, exchange: str | None = None
    ) -> None:
        """Publish messages as they are (malformed ones included), with confirms.

        `exchange` "" sends each straight to the queue its routing key names.
        """
        pending = list(messages)
        with kombu.Connection(self._amqp_url, heartbeat=0) as connection:
            publisher = ConfirmedPublisher(connection)
            for start in range(0, len(pending), window):
                chunk = pending[start : start + window]
                tags = {
                    publisher.publish(
                        message.body,
                        exchange=self._exchange if exchange is None else exchange,
                        routing_key=message.routing_key,
                        content_type=message.content_type,
                        content_encoding=message.content_encoding,
                        headers=message.headers,
                        properties={"message_id": message.message_id, "type": message.type_name},
                        mandatory=True,  # a message no queue takes is refused, not dropped
                    ): message
                    for message in chunk
                }
                refused = set(publisher.wait_for_confirms(timeout=self.confirm_timeout))
                self.raw_confirmed += [m for tag, m in tags.items() if tag not in refused]

    def _send_window(self, publisher: ConfirmedPublisher, commands: list[Command]) -> None:
        sent: dict[int, Confirmed] = {}
        try:
            for command in commands:
                kind = COMMANDS_BY_TYPE[type(command).__name__]
                tag = publisher.publish(
                    command.model_dump_json().encode(),
                    exchange=self._exchange,
                    routing_key=kind.routing_key,
                    properties={"message_id": str(command.command_id), "type": kind.type_name},
                )
                sent[tag] = Confirmed(self._position, command)
                self._position += 1
            refused = set(publisher.wait_for_confirms(timeout=120))
        except (PublishFailed, OSError):
            self.unconfirmed += sent.values()
            raise
        for tag, item in sent.items():
            if tag in refused:
                self.nacked.append(item.command)
            else:
                self.confirmed.append(item)
