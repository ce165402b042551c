"""Fixtures shared by every test: real servers, a database and a namespace per test.

Tests never build tables themselves: a template database is migrated once per
run through the same `migrate()` the CLI uses, and each test gets a clone. Every
exchange and queue a test touches carries a namespace of its own.
With CI=true, a server that cannot be reached fails the run instead of skipping.
"""

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.support.broker import QueueReader, delete_topology, unique_queue_name
from tests.support.proxy import CuttableProxy
from tests.support.servers import Servers, locate_servers, unreachable
from worker.config import REPO_MIGRATIONS, Settings
from worker.db.migrate import migrate
from worker.durations import DEFAULT_RETRY_DELAYS, parse_delays
from worker.messaging.broker import connect_declared
from worker.messaging.topology import Topology
from worker.runner import WORKERS, run_workers

RUN_ID = uuid4().hex[:8]
TEST_RETRY_DELAYS = "100ms,300ms"
"""Retry tiers short enough that a test sees a message through all of them in a second."""
NO_RULES = Path(__file__).parent / "support" / "rules" / "none.yaml"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its folder: unit, integration or e2e."""
    for item in items:
        for marker in ("unit", "integration", "e2e"):
            if f"{os.sep}{marker}{os.sep}" in str(item.path):
                item.add_marker(marker)


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    with locate_servers() as found:
        problems = unreachable(found)
        if problems:
            message = "servers unreachable: " + "; ".join(problems)
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(message)
            pytest.skip(message)
        yield found


def _admin(servers: Servers) -> psycopg.Connection[Any]:
    return psycopg.connect(servers.postgres_url, autocommit=True)


def _url_for(servers: Servers, database: str) -> str:
    return make_conninfo(servers.postgres_url, dbname=database)


def _drop_database(servers: Servers, name: str) -> None:
    with _admin(servers) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def template_database(servers: Servers) -> Iterator[str]:
    """A database migrated once per run; tests get clones of it."""
    name = f"orders_test_{RUN_ID}_template"
    migrate(_url_for(servers, name), REPO_MIGRATIONS)
    yield name
    _drop_database(servers, name)


@pytest.fixture
def database_url(servers: Servers, template_database: str) -> Iterator[str]:
    """A fresh, migrated database for this test alone."""
    name = f"orders_test_{RUN_ID}_{uuid4().hex[:8]}"
    with _admin(servers) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_database)
            )
        )
    yield _url_for(servers, name)
    _drop_database(servers, name)


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """An autocommit connection to the test's database, for arranging and asserting."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def namespace(servers: Servers) -> Iterator[str]:
    """A namespace (name prefix) for this test's exchanges and queues; removed afterwards."""
    name = f"t{RUN_ID}-{uuid4().hex[:6]}"
    yield name
    # The CLI, run with only the test's namespace in its environment, declares the default tiers.
    for delays in (TEST_RETRY_DELAYS, DEFAULT_RETRY_DELAYS):
        delete_topology(servers.amqp_url, Topology(name, retry_delays_ms=parse_delays(delays)))


@pytest.fixture
def settings(servers: Servers, database_url: str, namespace: str) -> Settings:
    """Settings for this test: its own database and namespace, quick to retry and to react."""
    return Settings(
        database_url=database_url,
        amqp_url=servers.amqp_url,
        namespace=namespace,
        migrations_dir=REPO_MIGRATIONS,
        batch_wait_ms=5,
        reconnect_max_seconds=0.5,
        relay_sweep_seconds=0.2,
        heartbeat_seconds=10,
        retry_delays=TEST_RETRY_DELAYS,
        rules_file=NO_RULES,  # tests about rules bring their own
    )


@pytest.fixture
def topology(settings: Settings) -> Topology:
    """The test's topology, declared, so commands can be published before workers start."""
    declared = Topology.for_settings(settings)
    connect_declared(settings, "test", declared).release()
    return declared


class RunningWorkers:
    """Workers running in threads of the test process, stopped at the end of the test."""

    def __init__(self, settings: Settings, names: Sequence[str]) -> None:
        self.stop_event = threading.Event()
        self.succeeded: bool | None = None

        def target() -> None:
            self.succeeded = run_workers(settings, names, self.stop_event)

        self._thread = threading.Thread(target=target, name="test-workers", daemon=True)
        self._thread.start()

    def stop(self) -> bool:
        self.stop_event.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "workers did not stop within 30s"
        return bool(self.succeeded)


@pytest.fixture
def start_workers(settings: Settings) -> Iterator[Callable[..., RunningWorkers]]:
    """Start workers (default: all of them); each is stopped and must have exited cleanly."""
    started: list[RunningWorkers] = []

    def start(*names: str, with_settings: Settings | None = None) -> RunningWorkers:
        running = RunningWorkers(with_settings or settings, names or list(WORKERS))
        started.append(running)
        return running

    yield start
    results = [running.stop() for running in started]
    assert all(results), "a worker failed; see the log above"


@pytest.fixture
def events(settings: Settings, topology: Topology) -> Iterator[QueueReader]:
    """A queue of the test's own bound to every event, as another service would bind one."""
    reader = QueueReader(
        settings.amqp_url, topology.events_exchange, "#", unique_queue_name(topology, "events")
    )
    yield reader
    reader.close()


@pytest.fixture
def dead_letters(
    settings: Settings, topology: Topology, events: QueueReader
) -> Iterator[QueueReader]:
    """A queue of the test's own bound to the dead-letter exchange."""
    reader = QueueReader(
        settings.amqp_url, topology.dead_letter_exchange, "#", unique_queue_name(topology, "dlx")
    )
    yield reader
    reader.close()


@pytest.fixture
def broker_proxy(settings: Settings) -> Iterator[CuttableProxy]:
    """A loopback proxy to RabbitMQ whose connections the test can cut."""
    target = urlsplit(settings.amqp_url)
    proxy = CuttableProxy(target.hostname or "127.0.0.1", target.port or 5672)
    yield proxy
    proxy.close()
