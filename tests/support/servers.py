"""Find PostgreSQL and RabbitMQ for the tests: from the environment, Docker, or localhost.

- ORDERS_TEST_POSTGRES_URL / ORDERS_TEST_AMQP_URL, when set, name the servers.
- Otherwise, where a Docker engine answers, testcontainers starts both.
- Otherwise the servers already running on this machine are used, at the
  defaults below.
The PostgreSQL URL must reach a role that may create databases: every test
gets a database of its own, cloned from one migrated template.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import docker
import pika
import psycopg
from testcontainers.community.postgres import PostgresContainer
from testcontainers.community.rabbitmq import RabbitMqContainer

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


@dataclass(frozen=True)
class Servers:
    postgres_url: str
    """A URL to a maintenance database on a server where we may create databases."""
    amqp_url: str
    source: str


def docker_engine_available() -> bool:
    try:
        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


@contextmanager
def _containers() -> Iterator[Servers]:
    with (
        PostgresContainer("postgres:15-alpine", driver=None) as postgres,
        RabbitMqContainer("rabbitmq:3.13-management-alpine") as rabbit,
    ):
        user, password = postgres.username, postgres.password
        host, port = postgres.get_container_host_ip(), postgres.get_exposed_port(5432)
        rabbit_host, rabbit_port = rabbit.get_container_host_ip(), rabbit.get_exposed_port(5672)
        yield Servers(
            postgres_url=f"postgresql://{user}:{password}@{host}:{port}/postgres",
            amqp_url=f"amqp://guest:guest@{rabbit_host}:{rabbit_port}/%2F",
            source="testcontainers",
        )


@contextmanager
def locate_servers() -> Iterator[Servers]:
    postgres_url = os.environ.get("ORDERS_TEST_POSTGRES_URL")
    amqp_url = os.environ.get("ORDERS_TEST_AMQP_URL")
    if not postgres_url and not amqp_url and docker_engine_available():
        with _containers() as servers:
            yield servers
        return
    yield Servers(
        postgres_url=postgres_url or DEFAULT_POSTGRES_URL,
        amqp_url=amqp_url or DEFAULT_AMQP_URL,
        source="environment" if postgres_url or amqp_url else "local servers",
    )


def unreachable(servers: Servers) -> list[str]:
    """Describe each server that does not answer; empty when both do."""
    problems = []
    try:
        psycopg.connect(servers.postgres_url, connect_timeout=3).close()
    except psycopg.Error as error:
        problems.append(f"PostgreSQL at {servers.postgres_url}: {error}")
    try:
        parameters = pika.URLParameters(servers.amqp_url)
        parameters.socket_timeout = 3
        pika.BlockingConnection(parameters).close()
    except Exception as error:
        problems.append(f"RabbitMQ at {servers.amqp_url}: {error!r}")
    return problems
