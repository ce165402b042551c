"""Each named crash point: die exactly there, restart without the switch, and check the history."""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support.commands import change_status, create_order, order_number
from tests.support.fault_run import FaultRun
from tests.support.processes import WorkerProcess, settings_environment, wait_until
from tests.support.producer import RawMessage
from tests.support.workload import order_walks
from worker.config import Settings
from worker.crashpoints import (
    AFTER_COMMIT_BEFORE_ACK,
    AFTER_DEAD_LETTER_COPY_BEFORE_ACK,
    RELAY_AFTER_PUBLISH_BEFORE_MARK,
    REPLAY_AFTER_PUBLISH_BEFORE_MARK,
    RULES_AFTER_COMMIT_BEFORE_ACK,
)

pytestmark = pytest.mark.timeout(300)

TASK_RULES = """
rules:
  - name: follow-up
    trigger: order.created
    actions:
      - create_task: {title: "follow up ${order_number}", assignee: sales-ops, due_in: 8h}
"""


def died_at_crash_point(worker: WorkerProcess) -> None:
    assert worker.wait(60) == -signal.SIGKILL, worker.log_tail()
    assert "crash point reached" in worker.log_tail()


def malformed(count: int) -> list[RawMessage]:
    return [
        RawMessage(b'{"order_number": ', "order.status.change", f"bad-{i}") for i in range(count)
    ]


def test_after_commit_before_ack_applies_each_command_once(fault_run: FaultRun) -> None:
    commands = order_walks(20, 10, seed=21)
    fault_run.start(["relay", "dead-letter-ingester"])
    status = fault_run.workers["status-worker"].start(crash_at=AFTER_COMMIT_BEFORE_ACK)
    fault_run.producer.send(commands)
    died_at_crash_point(status)
    status.start()
    fault_run.finish()
    assert fault_run.figures["redeliveries"] > 0  # the committed batch came back, as duplicates


@pytest.mark.faults
def test_after_dead_letter_copy_before_ack_stores_each_poison_once(fault_run: FaultRun) -> None:
    fault_run.start(["relay", "dead-letter-ingester"])
    status = fault_run.workers["status-worker"].start(crash_at=AFTER_DEAD_LETTER_COPY_BEFORE_ACK)
    fault_run.producer.send(order_walks(10, 5, seed=22))
    fault_run.producer.send_raw(malformed(50))
    died_at_crash_point(status)
    status.start()
    fault_run.finish()
    with psycopg.connect(fault_run.settings.database_url) as db:
        stored = db.execute(
            "SELECT message_id, count(*), min(reason) FROM dead_letters GROUP BY message_id"
        ).fetchall()
    assert {row[0] for row in stored} == {f"bad-{i}" for i in range(50)}
    assert {(row[1], row[2]) for row in stored} == {(1, "malformed_json")}


@pytest.mark.faults
def test_relay_after_publish_before_mark_repeats_events_and_loses_none(
    fault_run: FaultRun,
) -> None:
    fault_run.start(["status-worker", "dead-letter-ingester"])
    relay = fault_run.workers["relay"].start(crash_at=RELAY_AFTER_PUBLISH_BEFORE_MARK)
    fault_run.producer.send(order_walks(20, 10, seed=23))
    died_at_crash_point(relay)
    relay.start()
    report = fault_run.finish()
    assert report.repeated_deliveries > 0  # published, not marked: sent again with the same id


@pytest.fixture
def rules_settings(fault_settings: Settings, tmp_path: Path) -> Settings:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(TASK_RULES, encoding="utf-8")
    return fault_settings.model_copy(update={"rules_file": rules_file})


@pytest.mark.faults
def test_rules_after_commit_before_ack_fires_each_rule_once(
    fault_run: FaultRun, rules_settings: Settings, tmp_path: Path
) -> None:
    commands = order_walks(20, 3, seed=24, duplicates=0)
    fault_run.start()
    rules = WorkerProcess(rules_settings, "rules", tmp_path).start(
        crash_at=RULES_AFTER_COMMIT_BEFORE_ACK
    )
    fault_run.producer.send(commands)
    died_at_crash_point(rules)
    rules.start()
    try:
        fault_run.finish()

        def tasks() -> tuple[int, int] | None:
            with psycopg.connect(rules_settings.database_url) as db:
                return db.execute(
                    "SELECT count(*), count(DISTINCT order_number) FROM tasks"
                ).fetchone()

        assert wait_until(lambda: tasks() == (20, 20), 60), tasks()
    finally:
        assert rules.stop() == 0, rules.log_tail()


def order_status_cli(settings: Settings, *args: str, crash_at: str | None = None) -> Any:
    env = {**os.environ, **settings_environment(settings)}
    env.pop("ORDERS_CRASH_AT", None)
    if crash_at:
        env["ORDERS_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def blocking_lock(fault_settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(fault_settings.database_url) as connection:
        yield connection


@pytest.mark.faults
def test_replay_after_publish_before_mark_applies_the_command_once(
    fault_run: FaultRun, fault_settings: Settings, blocking_lock: psycopg.Connection[Any]
) -> None:
    impatient = fault_settings.model_copy(update={"lock_timeout_ms": 50})
    for worker in fault_run.workers.values():
        worker.settings = impatient
    fault_run.start()
    number = order_number("FT")
    fault_run.producer.send([create_order(number)])
    assert wait_until(lambda: fault_run.outstanding() == (0, 0), 30)
    # The cause of the failure: a lock held past every retry tier.
    blocking_lock.execute("SELECT 1 FROM orders WHERE order_number = %s FOR UPDATE", (number,))
    fault_run.producer.send([change_status(number, "in_progress")])

    def dead_entry() -> int | None:
        with psycopg.connect(fault_settings.database_url) as db:
            row = db.execute("SELECT id FROM dead_letters WHERE state = 'dead'").fetchone()
        return None if row is None else int(row[0])

    assert wait_until(lambda: dead_entry() is not None, 60)
    entry = dead_entry()
    blocking_lock.rollback()
    crashed = order_status_cli(
        fault_settings,
        "dlq",
        "replay",
        "--id",
        str(entry),
        crash_at=REPLAY_AFTER_PUBLISH_BEFORE_MARK,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    again = order_status_cli(fault_settings, "dlq", "replay", "--id", str(entry), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["results"][0]["result"] == "replayed"
    report = fault_run.finish()
    assert report.applied == 2  # the registration, and the change replayed twice, applied once
