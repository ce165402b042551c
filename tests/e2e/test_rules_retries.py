"""The rules worker goes through the same retry tiers and dead-letter store as the status worker.

Contention is real: another session holds the `rule_firings` table locked, so
recording a verdict times out on `lock_timeout`.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from tests.support.commands import create_order, order_number
from tests.support.waiting import eventually
from worker.cli import main
from worker.config import Settings
from worker.messaging.topology import Topology
from worker.messaging.upstream import publish_command

Conn = psycopg.Connection[tuple[Any, ...]]
StartWorkers = Any

RULES = """
rules:
  - name: every-order-gets-a-task
    trigger: order.created
    actions:
      - create_task: {title: "welcome ${order_number}", assignee: sales-ops, due_in: 1d}
"""


@pytest.fixture
def rules_settings(settings: Settings, tmp_path: Path) -> Settings:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, "utf-8")
    return settings.model_copy(update={"rules_file": path, "lock_timeout_ms": 50})


@contextmanager
def firings_locked(database_url: str) -> Iterator[None]:
    with psycopg.connect(database_url) as blocker:
        blocker.execute("LOCK TABLE rule_firings IN EXCLUSIVE MODE")
        yield


def firings(db: Conn, number: str) -> int:
    row = db.execute(
        "SELECT count(*) FROM rule_firings WHERE order_number = %s", (number,)
    ).fetchone()
    return int(row[0]) if row else 0


def tasks(db: Conn, number: str) -> int:
    row = db.execute("SELECT count(*) FROM tasks WHERE order_number = %s", (number,)).fetchone()
    return int(row[0]) if row else 0


def retried(caplog: pytest.LogCaptureFixture, tier: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "tier", None) == tier]


def test_an_event_blocked_by_a_lock_waits_in_the_rules_tier_and_is_judged_once(
    settings: Settings,
    rules_settings: Settings,
    topology: Topology,
    start_workers: StartWorkers,
    database_url: str,
    db: Conn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="worker")
    start_workers(with_settings=rules_settings)
    number = order_number()
    with firings_locked(database_url):
        publish_command(settings.amqp_url, topology, create_order(number))
        eventually(lambda: retried(caplog, f"{topology.rules_queue}.retry.100ms"))

    eventually(lambda: tasks(db, number) == 1)
    assert firings(db, number) == 1
    assert db.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)


def test_an_event_that_outlasts_every_tier_is_stored_and_replayed_once(
    settings: Settings,
    rules_settings: Settings,
    topology: Topology,
    start_workers: StartWorkers,
    database_url: str,
    db: Conn,
) -> None:
    start_workers(with_settings=rules_settings)
    number = order_number()
    with firings_locked(database_url):
        publish_command(settings.amqp_url, topology, create_order(number))
        row = eventually(
            lambda: db.execute(
                "SELECT id, reason, source_queue, original_exchange, original_routing_key,"
                " attempts, message_type FROM dead_letters"
            ).fetchone(),
            timeout=30,
        )
    entry_id, *described = row
    assert described == [
        "retries_exhausted",
        topology.rules_queue,
        topology.events_exchange,
        "order.created",
        3,
        "OrderCreated",
    ]
    assert firings(db, number) == 0

    env = {
        "ORDERS_DATABASE_URL": settings.database_url,
        "ORDERS_AMQP_URL": settings.amqp_url,
        "ORDERS_NAMESPACE": settings.namespace,
        "ORDERS_RETRY_DELAYS": settings.retry_delays,
    }
    replayed = CliRunner().invoke(main, ["dlq", "replay", "--id", str(entry_id)], env=env)
    assert replayed.exit_code == 0, replayed.output

    eventually(lambda: tasks(db, number) == 1)
    assert firings(db, number) == 1
