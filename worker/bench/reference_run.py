"""One run of the reference pipeline, driven and measured exactly as our own run is.

Its own namespace (the product's topology, declared by `declare_topology`) and
its own database (the product's schema, from `migrations/`); the same load
generator publishes the same kind of workload and the same observer times the
events. Without a database, the run's processes are the reference's commands
process and a drain of the rules queue; with one, the commands process also
writes each batch as `reference_db` describes, before publishing its events.
The check is light: every command's event arrived, the broker refused nothing,
and (with the database) every command is in the inbox.
"""

import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import psycopg

from worker.bench.observer import EventObserver, Observed
from worker.bench.processes import (
    WorkerUsage,
    publish_measured,
    quantile,
    stop_processes,
    timing,
)
from worker.bench.reference_db import insert_orders
from worker.bench.run import (
    BenchOptions,
    cpu_per_command,
    database_name,
    isolated,
    prepare,
    scratch,
)
from worker.config import Settings
from worker.messaging.topology import Topology

DRAIN_PREFETCH = 1000
START_SECONDS = 30.0
"""The reference's processes must be consuming within this long."""


@dataclass
class ReferenceResult:
    with_database: bool
    batch_size: int
    messages: int
    distinct_commands: int
    seconds: float
    latencies_ms: list[float]
    processes: dict[str, WorkerUsage]
    servers: dict[str, float]
    event_repeats: int
    nacked: int
    problems: list[str] = field(default_factory=list)
    namespace: str = ""
    database: str = ""

    @property
    def commands_per_second(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    @property
    def passed(self) -> bool:
        return not self.problems and not self.nacked

    def as_json(self) -> dict[str, Any]:
        return {
            "with_database": self.with_database,
            "batch_size": self.batch_size,
            "messages": self.messages,
            "seconds": round(self.seconds, 3),
            "commands_per_second": round(self.commands_per_second),
            "latency_ms": {
                "p50": round(quantile(self.latencies_ms, 0.50), 1),
                "p99": round(quantile(self.latencies_ms, 0.99), 1),
            },
            "peak_rss_mb": {name: round(u.peak_rss_mb, 1) for name, u in self.processes.items()},
            "cpu_us_per_command": cpu_per_command(
                {name: u.cpu_seconds for name, u in self.processes.items()},
                self.servers,
                self.messages,
            ),
            "event_repeats": self.event_repeats,
            "broker_nacks": self.nacked,
            "namespace": self.namespace,
            "database": self.database,
            "check": {"passed": self.passed, "problems": self.problems},
        }


def run_reference(
    settings: Settings,
    options: BenchOptions,
    *,
    with_database: bool,
    batch_size: int,
    progress: Callable[[str], None],
) -> ReferenceResult:
    run_id = uuid.uuid4().hex[:8]
    run_settings = isolated(settings, f"bench-ref-{run_id}", f"orders_bench_ref_{run_id}")
    namespace = run_settings.namespace
    database_url = run_settings.database_url
    topology = Topology.for_settings(run_settings)
    label = "reference with database" if with_database else "reference without database"
    with scratch(run_settings, topology, options.keep) as workdir:
        progress(f"{label}: database {database_name(run_settings)}, namespace {namespace}")
        workflow, workload = prepare(run_settings, topology, options, prefix=f"R{run_id}")
        if with_database:
            insert_orders(database_url, list(workload.final_status), workflow.initial)
        observer = EventObserver(
            settings.amqp_url, topology.events_exchange, f"{namespace}.bench-events"
        )
        processes = _start(settings.amqp_url, topology, batch_size, workdir,
                           database_url if with_database else None)  # fmt: skip
        databases = [database_name(run_settings)]
        try:
            _wait_until_consuming(
                settings.amqp_url, [topology.status_worker_queue, topology.rules_queue], processes
            )
            progress(
                f"{label}: publishing {len(workload.changes)} status changes"
                + (f" at {options.rate:g}/s" if options.rate else "")
            )
            observed = Observed()
            load = publish_measured(
                settings, topology, workdir, workload.changes,
                rate=options.rate, processes=processes, observer=observer,
                observed=observed, databases=databases,
            )  # fmt: skip
            sent_at, nacked, usage, servers = load.sent_at, load.nacked, load.usage, load.servers
        finally:
            peaks = stop_processes(processes)
            observer.close()
        for name, peak in peaks.items():
            usage[name].peak_rss_mb = peak
        command_ids = [message.command_id for message in workload.changes]
        seconds, latencies = timing(sent_at, observed, command_ids)
        problems = _check(database_url if with_database else None, set(command_ids), observed)
        failed = [name for name, process in processes.items() if process.returncode != 0]
        problems += [f"{name} exited with an error (see its log)" for name in failed]
        return ReferenceResult(
            with_database=with_database,
            batch_size=batch_size,
            messages=len(workload.changes),
            distinct_commands=workload.distinct_changes,
            seconds=seconds,
            latencies_ms=latencies,
            processes=usage,
            servers=servers,
            event_repeats=observed.repeats,
            nacked=nacked,
            problems=problems,
            namespace=namespace,
            database=database_name(run_settings),
        )


def _start(
    amqp_url: str, topology: Topology, batch_size: int, workdir: Path, database_url: str | None
) -> dict[str, subprocess.Popen[bytes]]:
    module = [sys.executable, "-m", "worker.bench.reference"]
    commands = [*module, "commands", amqp_url, topology.status_worker_queue,
                topology.events_exchange, str(batch_size)]  # fmt: skip
    if database_url is not None:
        commands.append(database_url)
    arguments = {
        "reference-commands": commands,
        "reference-drain": [*module, "drain", amqp_url, topology.rules_queue, str(DRAIN_PREFETCH)],
    }
    processes = {}
    for name, argv in arguments.items():
        log = (workdir / f"{name}.log").open("wb")
        processes[name] = subprocess.Popen(argv, stdout=log, stderr=log)
    return processes


def _wait_until_consuming(
    amqp_url: str, queues: list[str], processes: dict[str, subprocess.Popen[bytes]]
) -> None:
    """Return once every queue has its consumer: start-up is not part of the measure."""
    deadline = time.monotonic() + START_SECONDS
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        while not all(
            channel.queue_declare(queue, passive=True).method.consumer_count for queue in queues
        ):
            exited = [name for name, process in processes.items() if process.poll() is not None]
            if exited or time.monotonic() > deadline:
                raise RuntimeError(f"the reference did not start consuming ({exited or queues})")
            time.sleep(0.05)
    finally:
        connection.close()


def _check(database_url: str | None, command_ids: set[str], observed: Observed) -> list[str]:
    problems = []
    missing = command_ids - observed.first_seen.keys()
    if missing:
        problems.append(f"commands whose event was not received: {len(missing)}")
    if database_url is not None:
        with psycopg.connect(database_url, autocommit=True) as connection:
            row = connection.execute(
                "SELECT count(*) FROM processed_commands WHERE command_id = ANY(%(ids)s::uuid[])",
                {"ids": list(command_ids)},
            ).fetchone()
        recorded = row[0] if row else 0
        if recorded != len(command_ids):
            problems.append(f"commands in the inbox: {recorded} of {len(command_ids)}")
    return problems
