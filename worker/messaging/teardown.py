"""Removing everything a namespace declared: its queues (retry tiers included) and exchanges.

Deleting a queue drops the messages in it; `order-status teardown` asks for
`--yes` before calling this. A retry tier is a queue named after its delay, so
the tiers of every delay list given are removed: the configured one and, for a
namespace once declared with the defaults, the default one.
"""

from collections.abc import Iterable

import pika
import pika.exceptions

from worker.messaging.errors import translated
from worker.messaging.topology import Topology

NOT_FOUND = 404


def delete_topology(amqp_url: str, topologies: Iterable[Topology]) -> tuple[list[str], list[str]]:
    """Delete the queues, then the exchanges, of each topology; return the names deleted.

    A name that does not exist is skipped (RabbitMQ answers 404 and closes the channel).
    """
    queues: list[str] = []
    exchanges: list[str] = []
    for topology in topologies:
        queues += [queue.name for queue in topology.queues() if queue.name not in queues]
        exchanges += [e.name for e in topology.exchanges() if e.name not in exchanges]
    with translated():
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        try:
            deleted_queues = [name for name in queues if _delete(connection, queue=name)]
            deleted_exchanges = [name for name in exchanges if _delete(connection, exchange=name)]
        finally:
            if connection.is_open:
                connection.close()
    return deleted_queues, deleted_exchanges


def _delete(
    connection: pika.BlockingConnection, *, queue: str | None = None, exchange: str | None = None
) -> bool:
    """Delete one queue or exchange if it exists; True if it did."""
    channel = connection.channel()
    try:
        if queue is not None:
            channel.queue_declare(queue, passive=True)
            channel.queue_delete(queue)
        elif exchange is not None:
            channel.exchange_declare(exchange, passive=True)
            channel.exchange_delete(exchange)
    except pika.exceptions.ChannelClosedByBroker as error:
        if error.reply_code != NOT_FOUND:
            raise
        return False
    if channel.is_open:
        channel.close()
    return True
