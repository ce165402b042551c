"""Publishing commands the way an upstream system does: plain pika, JSON, confirms.

Nothing here is needed by the workers; the CLI uses it so that what it sends
is exactly what any other AMQP client would send.
"""

import time

import pika
import pika.exceptions

from contracts import COMMANDS_BY_TYPE, Command
from worker.messaging.errors import translated
from worker.messaging.tls import pika_parameters
from worker.messaging.topology import Topology

NOT_FOUND = 404


class CommandNotRouted(Exception):
    """No queue is bound for the command: the topology has not been declared."""


def publish_command(
    amqp_url: str, topology: Topology, command: Command, correlation_id: str | None = None
) -> None:
    """Publish `command` persistently and return once the broker has confirmed it."""
    kind = COMMANDS_BY_TYPE[type(command).__name__]
    properties = pika.BasicProperties(
        content_type="application/json",
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=str(command.command_id),
        correlation_id=correlation_id,
        type=kind.type_name,
        app_id="order-status-cli",
        timestamp=int(time.time()),
    )
    connection = pika.BlockingConnection(pika_parameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            exchange=topology.commands_exchange,
            routing_key=kind.routing_key,
            body=command.model_dump_json().encode(),
            properties=properties,
            mandatory=True,
        )
    except pika.exceptions.UnroutableError as error:
        raise CommandNotRouted(
            f"no queue takes {kind.routing_key!r} on {topology.commands_exchange!r}; "
            "run `order-status declare` first"
        ) from error
    except pika.exceptions.ChannelClosedByBroker as error:
        if error.reply_code != NOT_FOUND:
            raise
        raise CommandNotRouted(
            f"there is no exchange {topology.commands_exchange!r}; run `order-status declare` first"
        ) from error
    finally:
        connection.close()


class PikaCommandSender:
    """Sends commands to a namespace's commands exchange (`worker.services.commands`)."""

    def __init__(self, amqp_url: str, topology: Topology) -> None:
        self._amqp_url = amqp_url
        self._topology = topology

    def send(self, command: Command, correlation_id: str | None) -> None:
        """Publish `command` and return once the broker has confirmed it.

        Broker client errors arrive as `Unavailable` or `Misconfigured`.
        """
        with translated():
            publish_command(self._amqp_url, self._topology, command, correlation_id)
