"""One fault scenario's run: worker processes, a confirming producer, events read, a verdict.

A scenario starts the workers as processes, publishes with confirms, injects
its fault, restarts what it killed, drains and asks the history checker. The
run keeps everything it needs to explain a failure: the checker's examples and
the tail of each worker's log.
"""

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from contracts import Command
from tests.support.collector import EventCollector
from tests.support.history import Report, check_history
from tests.support.observation import observe
from tests.support.processes import ROLES, WorkerProcess, wait_until
from tests.support.producer import ConfirmingProducer
from tests.support.workflow_spec import spec_workflow
from worker.config import Settings
from worker.messaging.topology import Topology

SETTLED_QUERY = """
    SELECT
      (SELECT count(*) FROM unnest(%(ids)s::text[]) AS sent(id)
        WHERE NOT EXISTS (SELECT 1 FROM processed_commands p WHERE p.command_id::text = sent.id)
          AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.message_id = sent.id)),
      (SELECT count(*) FROM outbox WHERE published_at IS NULL)
"""


class FaultRun:
    """The processes and records of one scenario."""

    def __init__(self, settings: Settings, topology: Topology, log_dir: Path) -> None:
        self.settings = settings
        self.topology = topology
        self.log_dir = log_dir
        self.producer = ConfirmingProducer(settings.amqp_url, topology)
        self.events = EventCollector(
            settings.amqp_url, topology, f"{topology.namespace}.test-fault-events"
        )
        self.workers = {role: WorkerProcess(settings, role, log_dir) for role in ROLES}
        self.report: Report | None = None
        self.figures: dict[str, Any] = {}
        """What a scenario measured besides the checker's counts (peak RSS, seconds)."""

    def use_settings(self, settings: Settings) -> None:
        """Start the workers with other settings from now on (a proxy's address, a timeout)."""
        for worker in self.workers.values():
            worker.settings = settings

    def publish_in_background(self, commands: Sequence[Command]) -> threading.Thread:
        thread = threading.Thread(target=self.producer.send, args=(commands,), daemon=True)
        thread.start()
        return thread

    def wait_for_progress(self, at_least: int, timeout: float = 60) -> None:
        assert wait_until(lambda: inbox_count(self.settings.database_url) >= at_least, timeout), (
            f"fewer than {at_least} commands had an outcome within {timeout}s"
        )

    def start(self, roles: Sequence[str] = ROLES, crash_at: str | None = None) -> None:
        for role in roles:
            self.workers[role].start(crash_at=crash_at)

    def outstanding(self, extra_ids: Sequence[str] = ()) -> tuple[int, int]:
        """(confirmed commands with no outcome and no dead letter, unpublished outbox rows)."""
        ids = [str(item.command.command_id) for item in self.producer.confirmed]
        ids += [message.message_id for message in self.producer.raw_confirmed]
        ids += list(extra_ids)
        with psycopg.connect(self.settings.database_url, autocommit=True) as connection:
            row = connection.execute(SETTLED_QUERY, {"ids": ids}).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def drain(self, timeout: float = 120.0) -> bool:
        """Wait until every command has settled, the outbox is empty and no event still comes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.events.collect(idle_seconds=0.2)
            if self.outstanding() == (0, 0) and self.events.collect(idle_seconds=1.0) == 0:
                return True
        return False

    def check(self) -> Report:
        observed = observe(self.settings.database_url, self.events.event_ids)
        return check_history(
            self.producer.confirmed, observed, spec_workflow(), self.producer.unconfirmed
        )

    def finish(self, drain_timeout: float = 120.0) -> Report:
        """Drain, stop every worker cleanly, and judge the history; fail with the logs if bad."""
        drained = self.drain(drain_timeout)
        exits = {role: worker.stop() for role, worker in self.workers.items()}
        self.events.collect()
        report = self.check()
        self.report = report
        self.figures["redeliveries"] = self.redeliveries()
        logs = "\n".join(
            f"--- {role} (exit {exits[role]}):\n{worker.log_tail()}"
            for role, worker in self.workers.items()
        )
        assert drained, f"the run did not drain: {report.describe()}\n{logs}"
        report.assert_clean()
        assert all(code in (0, None) for code in exits.values()), f"a worker failed:\n{logs}"
        return report

    def redeliveries(self) -> int:
        """Deliveries the inbox counted beyond those the producer sent: the fault's repeats."""
        sent = len(self.producer.confirmed) + len(self.producer.unconfirmed)
        with psycopg.connect(self.settings.database_url, autocommit=True) as connection:
            row = connection.execute(
                "SELECT coalesce(sum(deliveries), 0) FROM processed_commands"
            ).fetchone()
        assert row is not None
        return int(row[0]) - sent

    def summary(self) -> dict[str, Any]:
        assert self.report is not None
        return {**self.report.counts(), **self.figures}

    def close(self) -> None:
        for worker in self.workers.values():
            if worker.alive():
                worker.kill()
                worker.wait(10)
        self.events.delete()


def inbox_count(database_url: str) -> int:
    """How many commands have an outcome so far."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        row = connection.execute("SELECT count(*) FROM processed_commands").fetchone()
    assert row is not None
    return int(row[0])
