"""One benchmark run: its own database and namespace, real workers, a checked result.

The status worker and the relay run as separate processes, as they would in
production, so their memory and CPU are measured one by one. The load
generator is a third process; this one observes the events and keeps time.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from worker.bench.ceiling import Ceiling, measure_ceiling
from worker.bench.observer import EventObserver, Observed
from worker.bench.processes import (
    WorkerUsage,
    publish_and_observe,
    publish_measured,
    quantile,
    stop_processes,
    timing,
)
from worker.bench.verify import Verdict, verify
from worker.bench.workload import Workload, plan_workload
from worker.config import Settings
from worker.db.migrate import migrate
from worker.db.workflow_store import load_workflow
from worker.domain.workflow import Workflow
from worker.messaging.broker import connect_declared
from worker.messaging.topology import Topology
from worker.runner import WORKERS

NO_RULES = "rules: []  # the benchmark measures the status path; the rules worker idles\n"
CEILING_MESSAGES = 20_000


@dataclass(frozen=True)
class BenchOptions:
    orders: int
    commands: int
    duplicates: float = 0.0
    invalid: float = 0.0
    rate: float | None = None
    ceiling: bool = True
    keep: bool = False


@dataclass
class BenchResult:
    options: BenchOptions
    messages: int
    distinct_commands: int
    seconds: float
    latencies_ms: list[float]
    workers: dict[str, WorkerUsage]
    observed: Observed
    verdict: Verdict
    nacked: int
    namespace: str
    database: str
    ceiling: Ceiling | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    servers: dict[str, float] = field(default_factory=dict)
    """CPU seconds of RabbitMQ and PostgreSQL in the timed phase (see server_cpu)."""

    @property
    def commands_per_second(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def latency(self, q: float) -> float:
        return quantile(self.latencies_ms, q)

    @property
    def passed(self) -> bool:
        return self.verdict.passed and not self.nacked

    def as_json(self) -> dict[str, Any]:
        cpu = sum(usage.cpu_seconds for usage in self.workers.values())
        ceiling = None
        if self.ceiling:
            ceiling = {
                "broker_publish": round(self.ceiling.broker_publish),
                "broker_consume": round(self.ceiling.broker_consume),
                "database_apply": round(self.ceiling.database_apply),
                "binding": round(self.ceiling.binding),
            }
        return {
            "orders": self.options.orders,
            "commands": self.distinct_commands,
            "messages": self.messages,
            "duplicates": self.options.duplicates,
            "invalid": self.options.invalid,
            "offered_rate": self.options.rate,
            "seconds": round(self.seconds, 3),
            "commands_per_second": round(self.commands_per_second),
            "latency_ms": {
                "p50": round(self.latency(0.50), 1),
                "p95": round(self.latency(0.95), 1),
                "p99": round(self.latency(0.99), 1),
                "max": round(self.latency(1.0), 1),
            },
            "peak_rss_mb": {name: round(u.peak_rss_mb, 1) for name, u in self.workers.items()},
            "cpu_seconds": {name: round(u.cpu_seconds, 2) for name, u in self.workers.items()},
            "cpu_seconds_per_1000_commands": round(1000 * cpu / self.messages, 3),
            "cpu_us_per_command": cpu_per_command(
                {name: u.cpu_seconds for name, u in self.workers.items()},
                self.servers,
                self.messages,
            ),
            "ceiling": ceiling,
            "ratio_to_ceiling": (
                round(self.commands_per_second / self.ceiling.binding, 3) if self.ceiling else None
            ),
            "event_repeats": self.observed.repeats,
            "broker_nacks": self.nacked,
            "settings": self.settings,
            "namespace": self.namespace,
            "database": self.database,
            "check": {"passed": self.passed, "problems": self.verdict.problems},
        }


def isolated(settings: Settings, namespace: str, database: str) -> Settings:
    """`settings` for a run of its own: its namespace, and its database on the same server."""
    params = conninfo_to_dict(settings.database_url)
    params["dbname"] = database
    database_url = make_conninfo(**{k: str(v) for k, v in params.items()})
    return settings.model_copy(update={"namespace": namespace, "database_url": database_url})


def database_name(settings: Settings) -> str:
    return str(conninfo_to_dict(settings.database_url)["dbname"])


def prepare(
    settings: Settings, topology: Topology, options: BenchOptions, *, prefix: str
) -> tuple[Workflow, Workload]:
    """Migrate the run's database, declare its topology, and plan its workload."""
    migrate(settings.database_url, settings.migrations_dir)
    connect_declared(settings, "bench", topology).release()
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        workflow = load_workflow(connection)
    workload = plan_workload(
        workflow,
        orders=options.orders,
        commands=options.commands,
        duplicates=options.duplicates,
        invalid=options.invalid,
        prefix=prefix,
    )
    return workflow, workload


def run_bench(
    settings: Settings, options: BenchOptions, progress: Callable[[str], None]
) -> BenchResult:
    run_id = uuid.uuid4().hex[:8]
    bench_settings = isolated(settings, f"bench-{run_id}", f"orders_bench_{run_id}")
    topology = Topology.for_settings(bench_settings)
    with scratch(bench_settings, topology, options.keep) as workdir:
        progress(
            f"database {database_name(bench_settings)}, namespace {bench_settings.namespace}, "
            f"worker logs in {workdir}"
        )
        _, workload = prepare(bench_settings, topology, options, prefix=f"B{run_id}")
        namespace, database_url = bench_settings.namespace, bench_settings.database_url
        database = database_name(bench_settings)
        observer = EventObserver(
            settings.amqp_url, topology.events_exchange, f"{namespace}.bench-events"
        )
        workers = _start_workers(bench_settings, workdir)
        try:
            observed = Observed()
            progress(f"registering {options.orders} orders")
            publish_and_observe(
                settings.amqp_url, topology.commands_exchange, workdir, workload.registrations,
                rate=None, observer=observer, observed=observed,
            )  # fmt: skip
            progress(
                f"publishing {len(workload.changes)} status changes"
                + (f" at {options.rate:g}/s" if options.rate else "")
            )
            load = publish_measured(
                settings, topology, workdir, workload.changes,
                rate=options.rate, processes=workers, observer=observer,
                observed=observed, databases=[database],
            )  # fmt: skip
            sent_at, nacked, usage, servers = load.sent_at, load.nacked, load.usage, load.servers
        finally:
            peaks = stop_processes(workers)
            observer.close()
        for name, peak in peaks.items():
            usage.setdefault(name, WorkerUsage()).peak_rss_mb = peak
        seconds, latencies = timing(
            sent_at, observed, [message.command_id for message in workload.changes]
        )
        progress("checking the run")
        verdict = verify(database_url, workload, observed)
        ceiling = None
        if options.ceiling:
            progress("measuring the broker and database ceilings")
            ceiling = measure_ceiling(
                settings.amqp_url, database_url, f"{namespace}.ceiling", CEILING_MESSAGES
            )
        return BenchResult(
            options=options,
            messages=len(workload.changes),
            distinct_commands=workload.distinct_changes,
            seconds=seconds,
            latencies_ms=latencies,
            workers=usage,
            observed=observed,
            verdict=verdict,
            nacked=nacked,
            namespace=namespace,
            database=database,
            ceiling=ceiling,
            settings={"batch_size": settings.batch_size, "batch_wait_ms": settings.batch_wait_ms},
            servers=servers,
        )


def _start_workers(settings: Settings, workdir: Path) -> dict[str, subprocess.Popen[bytes]]:
    rules_file = workdir / "no-rules.yaml"
    rules_file.write_text(NO_RULES, encoding="utf-8")
    env = {
        **os.environ,
        "ORDERS_RULES_FILE": str(rules_file),
        "ORDERS_NAMESPACE": settings.namespace,
        "ORDERS_DATABASE_URL": settings.database_url,
        "ORDERS_AMQP_URL": settings.amqp_url,
        "ORDERS_LOG_LEVEL": os.environ.get("ORDERS_LOG_LEVEL", "WARNING"),
    }
    workers = {}
    for name in WORKERS:  # what `run all` runs, one process each
        log = (workdir / f"{name}.log").open("wb")
        workers[name] = subprocess.Popen(
            [sys.executable, "-m", "worker", "run", name], env=env, stdout=log, stderr=log
        )
    return workers


@contextmanager
def scratch(settings: Settings, topology: Topology, keep: bool) -> Iterator[Path]:
    """A folder for plans and worker logs; it, the database and the topology go after.

    With `keep`, all three stay for inspection.
    """
    workdir = Path(tempfile.mkdtemp(prefix="order-status-bench-"))
    try:
        yield workdir
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
            _drop(settings, topology)


def _drop(settings: Settings, topology: Topology) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    channel = connection.channel()
    for queue in [*topology.queues(), *_extra_queues(topology)]:
        channel.queue_delete(queue if isinstance(queue, str) else queue.name)
    for exchange in topology.exchanges():
        channel.exchange_delete(exchange.name)
    connection.close()
    name = conninfo_to_dict(settings.database_url)["dbname"]
    maintenance = make_conninfo(settings.database_url, dbname="postgres")
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name)))
        )


def _extra_queues(topology: Topology) -> list[str]:
    return [f"{topology.namespace}.ceiling"]


def cpu_per_command(
    processes: dict[str, float], servers: dict[str, float], messages: int
) -> dict[str, float]:
    """Microseconds of CPU per command message: each process, each server, and their total."""
    spent = {**processes, **servers}
    per_command = {name: round(1e6 * seconds / messages, 1) for name, seconds in spent.items()}
    return {**per_command, "total": round(1e6 * sum(spent.values()) / messages, 1)}
