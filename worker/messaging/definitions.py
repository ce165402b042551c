"""Broker users and permissions per role, as a RabbitMQ definitions document.

`order-status declare --print-definitions` prints it; operators import it with
`rabbitmqctl import_definitions` (or the management UI) and then give each user
a password (`rabbitmqctl change_password`). The users carry no password hash,
so none of them can log in before that.

RabbitMQ checks three permissions, each a regular expression over resource
names in one virtual host: configure (declare, delete), write (publish to an
exchange; bind a queue; name a queue's dead-letter exchange) and read (consume
from a queue; bind from an exchange). What each role needs:

- A producer publishes commands and declares nothing: it may write to
  `{ns}.commands` only. It cannot publish to `{ns}.retry-return` or
  `{ns}.dead-letter`, where the failure path's headers are trusted.
- Every worker and the operator declare the whole topology when they start.
  Declaring a queue with a dead-letter exchange needs write on that exchange,
  so each of them may also write to `{ns}.dead-letter` and `{ns}.retry-return`
  (and to the queues, which only allows binding them: publishing straight to a
  queue goes through the default exchange, which no role may write to).
- Beyond that, each writes only where it publishes: the status and rules
  workers to `{ns}.retry` (their retry tiers), the relay to the exchanges the
  outbox names (`{ns}.events`, `{ns}.commands`, `{ns}.notifications`), the
  operator to `{ns}.commands` (`order-status publish`); replay goes to
  `{ns}.retry-return`, which the operator already has.
"""

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

from worker.messaging.topology import Topology

NOTHING = "^$"
"""A permission that matches no resource name."""

NO_PASSWORD = ""
"""An empty password hash: the user cannot log in until a password is set."""

ROLES = ("producer", "status-worker", "relay", "rules", "dead-letter-ingester", "operator")


def literal(name: str) -> str:
    """`name` as a regular expression (namespaces and our names hold no other metacharacter)."""
    if not re.fullmatch(r"[a-z0-9_.-]+", name):
        raise ValueError(f"unexpected character in resource name {name!r}")
    return name.replace(".", r"\.")


def any_of(patterns: Iterable[str]) -> str:
    """A regular expression matching a whole name that one of `patterns` matches."""
    return "^(" + "|".join(sorted(set(patterns))) + ")$"


def vhost_of(amqp_url: str) -> str:
    """The virtual host an AMQP URL names (`/` when it names none)."""
    path = urlsplit(amqp_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


TIER_LABEL = r"\.retry\.[0-9a-z]+"
"""The suffix of a retry tier queue, whatever delays are configured (`.retry.5s`)."""


def role_permissions(topology: Topology) -> dict[str, dict[str, str]]:
    """The configure, write and read expressions of each role, keyed by role."""
    work_queues = (topology.status_worker_queue, topology.rules_queue)
    queues = [
        *(literal(queue) for queue in (*work_queues, topology.dead_letter_queue)),
        *(literal(queue) + TIER_LABEL for queue in work_queues),
    ]
    exchanges = [literal(exchange.name) for exchange in topology.exchanges()]
    declared = any_of([*queues, *exchanges])
    # Needed to declare the topology: bind every queue, name both dead-letter exchanges.
    declaring = [
        *queues,
        literal(topology.dead_letter_exchange),
        literal(topology.retry_return_exchange),
    ]
    publishes = {
        "status-worker": [topology.retry_exchange, topology.dead_letter_exchange],
        "rules": [topology.retry_exchange, topology.dead_letter_exchange],
        "relay": [
            topology.outbox_exchange(None),
            topology.outbox_exchange("commands"),
            topology.outbox_exchange("notifications"),
        ],
        "dead-letter-ingester": [],
        "operator": [topology.retry_return_exchange, topology.commands_exchange],
    }
    permissions = {
        "producer": {
            "configure": NOTHING,
            "write": any_of([literal(topology.commands_exchange)]),
            "read": NOTHING,
        }
    }
    for role, targets in publishes.items():
        permissions[role] = {
            "configure": declared,
            "write": any_of([*declaring, *(literal(target) for target in targets)]),
            "read": declared,
        }
    return permissions


def user_name(topology: Topology, role: str) -> str:
    """The broker user of `role` in this namespace, e.g. `orders-relay`."""
    return f"{topology.namespace}-{role}"


def definitions(topology: Topology, vhost: str) -> dict[str, Any]:
    """A definitions document with one password-less user per role and its permissions."""
    permissions = role_permissions(topology)
    return {
        "users": [
            {
                "name": user_name(topology, role),
                "password_hash": NO_PASSWORD,
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": [],
            }
            for role in ROLES
        ],
        "vhosts": [{"name": vhost}],
        "permissions": [
            {"user": user_name(topology, role), "vhost": vhost, **permissions[role]}
            for role in ROLES
        ],
    }
