"""The broker users of `declare --print-definitions`: each role can do its job and no more.

Real RabbitMQ: a user of each role is made with exactly the printed
permissions. The producer may publish commands but not into the failure path
(`{ns}.retry-return`, `{ns}.dead-letter`), where headers are trusted; the
workers, each logged in as its own user, still run the whole flow.
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pika
import pika.exceptions
import psycopg
import pytest
from click.testing import CliRunner

from tests.conftest import RunningWorkers
from tests.security.broker_users import BrokerUser, broker_users
from tests.support.broker import QueueReader
from tests.support.commands import change_status, create_order, order_number
from tests.support.servers import Servers
from tests.support.waiting import eventually
from worker.cli import main
from worker.config import Settings
from worker.messaging.broker import connect_declared
from worker.messaging.definitions import ROLES, vhost_of
from worker.messaging.topology import Topology
from worker.messaging.upstream import publish_command

ACCESS_REFUSED = 403


def printed_definitions(settings: Settings) -> dict[str, Any]:
    """What `order-status declare --print-definitions` prints for these settings."""
    printed = CliRunner().invoke(
        main,
        ["declare", "--print-definitions"],
        env={
            "ORDERS_NAMESPACE": settings.namespace,
            "ORDERS_AMQP_URL": settings.amqp_url,
            "ORDERS_RETRY_DELAYS": settings.retry_delays,
        },
    )
    assert printed.exit_code == 0, printed.output
    document: dict[str, Any] = json.loads(printed.output)
    return document


def test_the_definitions_give_every_role_a_user_without_a_password(settings: Settings) -> None:
    document = printed_definitions(settings)
    names = [f"{settings.namespace}-{role}" for role in ROLES]
    assert [user["name"] for user in document["users"]] == names
    assert [entry["user"] for entry in document["permissions"]] == names
    assert all(user["password_hash"] == "" for user in document["users"])
    assert document["vhosts"] == [{"name": vhost_of(settings.amqp_url)}]


@pytest.fixture(autouse=True)
def _local_broker(servers: Servers) -> None:
    """rabbitmqctl reaches the node of this machine, not one in a container."""
    if servers.source == "testcontainers":
        pytest.skip("broker users are made with rabbitmqctl, which reaches only a local node")


@contextmanager
def role_users(settings: Settings, *roles: str) -> Iterator[dict[str, BrokerUser]]:
    """A broker user for each of `roles`, with the permissions the definitions give it."""
    names = {f"{settings.namespace}-{role}": role for role in roles}
    with broker_users(settings.amqp_url, printed_definitions(settings), list(names)) as made:
        yield {names[name]: user for name, user in made.items()}


def publish(amqp_url: str, exchange: str, routing_key: str, headers: dict[str, Any]) -> None:
    """Publish one message with confirms, as any client could."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            exchange, routing_key, b"{}", pika.BasicProperties(headers=headers), mandatory=False
        )
    finally:
        if connection.is_open:
            connection.close()


def assert_refused(amqp_url: str, exchange: str, headers: dict[str, Any] | None = None) -> None:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        publish(amqp_url, exchange, "order.status.change", headers or {})
    assert refused.value.reply_code == ACCESS_REFUSED
    assert "ACCESS_REFUSED" in refused.value.reply_text


def test_a_producer_may_publish_commands_but_not_into_the_failure_path(
    topology: Topology, settings: Settings
) -> None:
    with role_users(settings, "producer") as users:
        _producer_is_kept_to_commands(users["producer"].url, topology)


def _producer_is_kept_to_commands(producer: str, topology: Topology) -> None:
    publish_command(producer, topology, create_order())  # confirmed and routed

    forged = {"retry-queue": topology.status_worker_queue, "x-original-exchange": "forged"}
    assert_refused(producer, topology.retry_return_exchange, forged)
    assert_refused(producer, topology.dead_letter_exchange, forged)
    assert_refused(producer, topology.retry_exchange, forged)
    assert_refused(producer, topology.events_exchange)
    assert_refused(producer, "")  # straight into a queue, through the default exchange
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as declaring:
        declare_queue(producer, topology.status_worker_queue)
    assert declaring.value.reply_code == ACCESS_REFUSED


def declare_queue(amqp_url: str, name: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        connection.channel().queue_declare(name, durable=True, passive=False)
    finally:
        if connection.is_open:
            connection.close()


def test_each_worker_writes_only_where_it_publishes(topology: Topology, settings: Settings) -> None:
    roles = ("status-worker", "relay", "dead-letter-ingester", "operator")
    with role_users(settings, *roles) as users:
        _workers_write_where_they_publish(users, topology)


def _workers_write_where_they_publish(users: dict[str, BrokerUser], topology: Topology) -> None:
    status_worker, relay = users["status-worker"].url, users["relay"].url
    publish(status_worker, topology.retry_exchange, "order.status.change", {})
    publish(status_worker, topology.dead_letter_exchange, "order.status.change", {})
    assert_refused(status_worker, topology.events_exchange)
    assert_refused(status_worker, topology.commands_exchange)
    publish(relay, topology.events_exchange, "order.created", {})
    assert_refused(relay, topology.retry_exchange)
    assert_refused(users["dead-letter-ingester"].url, topology.events_exchange)
    assert_refused(users["dead-letter-ingester"].url, topology.retry_exchange)
    publish(users["operator"].url, topology.retry_return_exchange, "order.created", {})


def test_the_workers_run_the_whole_flow_each_as_its_own_user(
    settings: Settings,
    topology: Topology,
    events: QueueReader,
    db: psycopg.Connection[tuple[Any, ...]],
) -> None:
    with role_users(settings, *ROLES) as users:
        _run_the_flow(users, settings, topology, events, db)


def _run_the_flow(
    users: dict[str, BrokerUser],
    settings: Settings,
    topology: Topology,
    events: QueueReader,
    db: psycopg.Connection[tuple[Any, ...]],
) -> None:
    running = [
        RunningWorkers(settings.model_copy(update={"amqp_url": users[name].url}), [name])
        for name in ("status-worker", "relay", "rules", "dead-letter-ingester")
    ]
    try:
        for worker in ("status-worker", "rules", "dead-letter-ingester", "operator"):
            as_user = settings.model_copy(update={"amqp_url": users[worker].url})
            connect_declared(as_user, "test", topology).release()  # may declare everything
        number = order_number()
        producer = users["producer"].url
        publish_command(producer, topology, create_order(number))
        publish_command(producer, topology, change_status(number, "in_progress"))
        publish(producer, topology.commands_exchange, "order.status.change", {})  # poison

        created, changed = events.take(2)
        assert (created.routing_key, changed.routing_key) == (
            "order.created",
            "order.status.changed",
        )
        stored = eventually(
            lambda: db.execute("SELECT reason FROM dead_letters").fetchall(), timeout=20
        )
        assert len(stored) == 1
    finally:
        results = [worker.stop() for worker in running]
    assert all(results), "a worker failed as its own broker user; see the log above"
