"""TLS end to end: `amqps://` and `sslmode=verify-full`, against servers of the test's own.

A throwaway CA signs a certificate for localhost and 127.0.0.1; a second
PostgreSQL accepts only TLS over TCP and a second RabbitMQ node listens with
TLS. `migrate`, `declare`, the workers and a producer work through them; a
certificate from another CA or for another name is refused in one clear line.
"""

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from uuid import uuid4

import pika
import psycopg
import pytest

from tests.conftest import TEST_RETRY_DELAYS, RunningWorkers
from tests.security.tls_servers import (
    CannotStart,
    Certificates,
    TlsPostgres,
    TlsRabbit,
    drop_database,
    make_certificates,
    throwaway_folder,
    tls_postgres,
    tls_rabbitmq,
)
from tests.support.commands import change_status, create_order, order_number
from worker.config import REPO_MIGRATIONS, Settings
from worker.errors import Misconfigured
from worker.messaging.broker import connect_broker
from worker.messaging.errors import translated
from worker.messaging.tls import pika_parameters
from worker.messaging.topology import Topology
from worker.messaging.upstream import publish_command

pytestmark = pytest.mark.tls


@dataclass(frozen=True)
class TlsServers:
    certificates: Certificates
    postgres: TlsPostgres
    rabbit: TlsRabbit


@pytest.fixture(scope="module")
def tls_servers() -> Iterator[TlsServers]:
    """Both servers, for the tests of this module; stopped and removed afterwards."""
    with ExitStack() as stack:
        try:
            folder = stack.enter_context(throwaway_folder())
            certificates = make_certificates(folder)
            postgres = stack.enter_context(tls_postgres(folder, certificates))
            rabbit = stack.enter_context(tls_rabbitmq(folder, certificates))
        except CannotStart as reason:
            pytest.skip(f"no TLS servers of our own here: {reason}")
        yield TlsServers(certificates, postgres, rabbit)


def cli(
    *args: str, database_url: str, amqp_url: str, namespace: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env={
            "PATH": "/usr/bin:/bin",
            "ORDERS_DATABASE_URL": database_url,
            "ORDERS_AMQP_URL": amqp_url,
            "ORDERS_NAMESPACE": namespace,
            "ORDERS_RETRY_DELAYS": TEST_RETRY_DELAYS,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def take_events(amqp_url: str, queue: str, count: int, timeout: float = 15.0) -> list[str]:
    connection = pika.BlockingConnection(pika_parameters(amqp_url))
    try:
        channel = connection.channel()
        keys: list[str] = []
        end = time.monotonic() + timeout
        while len(keys) < count and time.monotonic() < end:
            method, _properties, _body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                connection.sleep(0.05)
                continue
            keys.append(method.routing_key)
        return keys
    finally:
        connection.close()


def test_migrate_declare_workers_and_a_producer_work_over_tls(tls_servers: TlsServers) -> None:
    ca = tls_servers.certificates.ca
    database = f"orders_tls_{uuid4().hex[:8]}"
    database_url = tls_servers.postgres.url(database, ca)
    amqp_url = tls_servers.rabbit.url(ca)
    namespace = f"tls-{uuid4().hex[:6]}"
    try:
        for command in ("migrate", "declare"):
            done = cli(command, database_url=database_url, amqp_url=amqp_url, namespace=namespace)
            assert done.returncode == 0, done.stdout + done.stderr
        settings = Settings(
            database_url=database_url,
            amqp_url=amqp_url,
            namespace=namespace,
            migrations_dir=REPO_MIGRATIONS,
            retry_delays=TEST_RETRY_DELAYS,
            relay_sweep_seconds=0.2,
        )
        topology = Topology.for_settings(settings)
        events = f"{namespace}.test-events"
        connection = pika.BlockingConnection(pika_parameters(amqp_url))
        channel = connection.channel()
        channel.queue_declare(events, durable=False)
        channel.queue_bind(events, topology.events_exchange, routing_key="#")
        connection.close()

        workers = RunningWorkers(settings, ["status-worker", "relay"])
        try:
            number = order_number()
            publish_command(amqp_url, topology, create_order(number))
            publish_command(amqp_url, topology, change_status(number, "in_progress"))
            assert take_events(amqp_url, events, 2) == ["order.created", "order.status.changed"]
        finally:
            assert workers.stop(), "a worker failed over TLS; see the log above"
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            ).fetchone()
            assert row == (True,)
    finally:
        drop_database(tls_servers.postgres, ca, database)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stdout + done.stderr  # a setting to fix
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_a_broker_certificate_from_another_ca_is_refused_in_one_line(
    tls_servers: TlsServers,
) -> None:
    other = tls_servers.rabbit.url(tls_servers.certificates.other_ca)
    line = one_line_error(
        cli("declare", database_url="", amqp_url=other, namespace=f"tls-{uuid4().hex[:6]}")
    )
    assert line.startswith("Error: TLS to RabbitMQ failed:")
    assert "CERTIFICATE_VERIFY_FAILED" in line
    assert line.endswith("(check ORDERS_AMQP_URL)")


def test_a_broker_certificate_for_another_name_is_refused(tls_servers: TlsServers) -> None:
    wrong_name = tls_servers.rabbit.url(
        tls_servers.certificates.ca, server_name_indication="broker.example.com"
    )
    settings = Settings(amqp_url=wrong_name, namespace="tls-name")
    with pytest.raises(Misconfigured, match="Hostname mismatch"), translated():
        connect_broker(settings, "test").release()


@pytest.mark.parametrize("wrong", ["ca", "name"])
def test_a_database_certificate_that_does_not_check_out_is_refused_in_one_line(
    tls_servers: TlsServers, wrong: str
) -> None:
    certificates, postgres = tls_servers.certificates, tls_servers.postgres
    if wrong == "ca":
        url = postgres.url("postgres", certificates.other_ca)
    else:
        url = postgres.url("postgres", certificates.ca, host="db.example.com", hostaddr="127.0.0.1")
    line = one_line_error(cli("migrate", database_url=url, amqp_url="", namespace="tls-db"))
    assert line.startswith("Error: cannot connect to PostgreSQL:")
    assert "certificate" in line
    assert line.endswith("(check ORDERS_DATABASE_URL)")


def test_a_plain_connection_to_the_tls_database_is_refused(tls_servers: TlsServers) -> None:
    plain = f"postgresql://postgres@127.0.0.1:{tls_servers.postgres.port}/postgres?sslmode=disable"
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(plain).close()
