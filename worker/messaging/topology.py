"""Exchange and queue names, and the one function that declares them.

The CLI (`order-status declare`), every worker at start and the tests call
`declare_topology`; declaring is idempotent, so each can do it without asking.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import amqp.exceptions
from kombu import Exchange, Queue, binding

from contracts import COMMANDS, OrderCreated, OrderStatusChanged
from contracts.catalog import EVENTS_BY_TYPE
from worker import durations
from worker.errors import Misconfigured

if TYPE_CHECKING:
    from worker.config import Settings

RULE_TRIGGER_EVENTS = (OrderCreated, OrderStatusChanged)
"""The events the rules worker's queue receives."""

RETRY_QUEUE_HEADER = "retry-queue"
"""Routes a waiting message into its tier and back to its queue only (no `x-` prefix:
headers exchanges ignore such headers when matching)."""
RETRY_DELAY_HEADER = "retry-delay"
"""Names the tier a waiting message is in, e.g. `5s`."""


class TopologyMismatch(Misconfigured):
    """A queue or exchange exists with other arguments than this configuration asks for."""

    def __init__(self, detail: str) -> None:
        super().__init__("ORDERS_NAMESPACE, ORDERS_DELIVERY_LIMIT and ORDERS_RETRY_DELAYS", detail)


@dataclass(frozen=True)
class Topology:
    """The names of everything the service declares, all under one namespace prefix."""

    namespace: str
    delivery_limit: int = 20
    retry_delays_ms: tuple[int, ...] = durations.parse_delays(durations.DEFAULT_RETRY_DELAYS)

    @classmethod
    def for_settings(cls, settings: "Settings") -> "Topology":
        return cls(settings.namespace, settings.delivery_limit, settings.retry_delays_ms)

    @property
    def commands_exchange(self) -> str:
        return f"{self.namespace}.commands"

    @property
    def events_exchange(self) -> str:
        return f"{self.namespace}.events"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.namespace}.dead-letter"

    @property
    def notifications_exchange(self) -> str:
        return f"{self.namespace}.notifications"

    @property
    def rules_queue(self) -> str:
        return f"{self.namespace}.rules"

    def outbox_exchange(self, name: str | None) -> str:
        """The exchange an outbox row names (`commands`, `notifications`; None: events)."""
        return f"{self.namespace}.{name or 'events'}"

    @property
    def retry_exchange(self) -> str:
        return f"{self.namespace}.retry"

    @property
    def retry_return_exchange(self) -> str:
        return f"{self.namespace}.retry-return"

    @property
    def status_worker_queue(self) -> str:
        return f"{self.namespace}.status-worker"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.namespace}.dead-letter"

    def exchanges(self) -> list[Exchange]:
        """The durable topic and headers exchanges, in the order they are declared."""
        return [
            *(
                Exchange(name, type="topic", durable=True)
                for name in (
                    self.commands_exchange,
                    self.events_exchange,
                    self.dead_letter_exchange,
                    self.notifications_exchange,
                )
            ),
            *(
                Exchange(name, type="headers", durable=True)
                for name in (self.retry_exchange, self.retry_return_exchange)
            ),
        ]

    def retry_queue(self, queue: str, delay_ms: int) -> str:
        """The tier of `queue` where messages wait `delay_ms` before their next attempt."""
        return f"{queue}.retry.{durations.label(delay_ms)}"

    def retry_tiers(self, queue: str) -> list[Queue]:
        """The delay queues of a consumer queue: each waits its TTL, then hands back to `queue`."""
        into = Exchange(self.retry_exchange, type="headers", durable=True)
        return [
            Queue(
                self.retry_queue(queue, delay),
                bindings=[
                    binding(
                        into,
                        arguments={
                            "x-match": "all",
                            RETRY_QUEUE_HEADER: queue,
                            RETRY_DELAY_HEADER: durations.label(delay),
                        },
                    )
                ],
                durable=True,
                queue_arguments={
                    "x-queue-type": "quorum",
                    # One TTL per queue, so the head always expires first.
                    "x-message-ttl": delay,
                    "x-dead-letter-exchange": self.retry_return_exchange,
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                },
            )
            for delay in self.retry_delays_ms
        ]

    def retry_return(self, queue: str) -> binding:
        """The binding that brings `queue`'s waiting messages back to it, and to no other."""
        back = Exchange(self.retry_return_exchange, type="headers", durable=True)
        return binding(back, arguments={"x-match": "all", RETRY_QUEUE_HEADER: queue})

    def _work_queue_arguments(self) -> dict[str, Any]:
        """The arguments of a queue a worker consumes: the status worker's and the rules'."""
        return {
            "x-queue-type": "quorum",
            # One consumer at a time (the others wait as hot standbys), so the
            # messages for one order are handled in the order they were sent.
            "x-single-active-consumer": True,
            "x-dead-letter-exchange": self.dead_letter_exchange,
            # A message redelivered this often is crash-looping a worker:
            # the queue dead-letters it instead of delivering it forever.
            "x-delivery-limit": self.delivery_limit,
            # Keep a message until the dead-letter queue has confirmed it.
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def status_worker(self) -> Queue:
        """The status worker's quorum queue, bound to every command routing key."""
        commands = Exchange(self.commands_exchange, type="topic", durable=True)
        return Queue(
            self.status_worker_queue,
            bindings=[
                *(binding(commands, routing_key=kind.routing_key) for kind in COMMANDS),
                self.retry_return(self.status_worker_queue),
            ],
            durable=True,
            queue_arguments=self._work_queue_arguments(),
        )

    def rules(self) -> Queue:
        """The rules worker's quorum queue, bound to the events rules can be triggered by."""
        events = Exchange(self.events_exchange, type="topic", durable=True)
        return Queue(
            self.rules_queue,
            bindings=[
                *(
                    binding(events, routing_key=EVENTS_BY_TYPE[model.__name__].routing_key)
                    for model in RULE_TRIGGER_EVENTS
                ),
                self.retry_return(self.rules_queue),
            ],
            durable=True,
            # As the status worker's: one active consumer, so the events of an
            # order are evaluated in order; poison and crash loops dead-lettered.
            queue_arguments=self._work_queue_arguments(),
        )

    def dead_letters(self) -> Queue:
        """The queue that keeps every dead-lettered message for operators."""
        dead_letter = Exchange(self.dead_letter_exchange, type="topic", durable=True)
        return Queue(
            self.dead_letter_queue,
            exchange=dead_letter,
            routing_key="#",
            durable=True,
            queue_arguments={"x-queue-type": "quorum"},
        )

    def queues(self) -> list[Queue]:
        return [
            self.dead_letters(),
            self.status_worker(),
            self.rules(),
            *self.retry_tiers(self.status_worker_queue),
            *self.retry_tiers(self.rules_queue),
        ]


def declare_topology(channel: Any, topology: Topology) -> None:
    """Declare every exchange, queue and binding of `topology` on `channel`.

    Raises TopologyMismatch, naming the entity, when one exists with other
    arguments (for example another delivery limit): RabbitMQ cannot change a
    queue's arguments in place.
    """
    entities = [*topology.exchanges(), *topology.queues()]
    for entity in entities:
        try:
            entity(channel).declare()
        except amqp.exceptions.PreconditionFailed as error:
            raise TopologyMismatch(
                f"{entity.name} already exists with other arguments ({error.reply_text}); "
                "drain and delete it, or configure the arguments it was declared with"
            ) from error
