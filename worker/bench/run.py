"""One benchmark run: its own database and namespace, real workers, a checked result.

The status worker and the relay run as separate processes, as they would in
production, so their memory and CPU are measured one by one. The load
generator is a third process; this one observes the events and keeps time.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import psutil
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from worker.bench.ceiling import Ceiling, measure_ceiling
from worker.bench.load import write_plan
from worker.bench.observer import EventObserver, Observed
from worker.bench.verify import Verdict, verify
from worker.bench.workload import PlannedMessage, plan_workload
from worker.config import Settings
from worker.db.migrate import migrate
from worker.db.workflow_store import load_workflow
from worker.messaging.broker import connect_declared
from worker.messaging.topology import Topology
from worker.runner import WORKERS

NO_RULES = "rules: []  # the benchmark measures the status path; the rules worker idles\n"
STALL_SECONDS = 60.0
"""A run in which no event arrives for this long has failed."""
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
class WorkerUsage:
    cpu_seconds: float = 0.0
    peak_rss_mb: float = 0.0


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

    @property
    def commands_per_second(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def latency(self, quantile: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(quantile * (len(ordered) - 1)))]

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


def run_bench(
    settings: Settings, options: BenchOptions, progress: Callable[[str], None]
) -> BenchResult:
    run_id = uuid.uuid4().hex[:8]
    namespace = f"bench-{run_id}"
    params = conninfo_to_dict(settings.database_url)
    params["dbname"] = f"orders_bench_{run_id}"
    database_url = make_conninfo(**{k: str(v) for k, v in params.items()})
    bench_settings = settings.model_copy(
        update={"namespace": namespace, "database_url": database_url}
    )
    topology = Topology.for_settings(bench_settings)
    with _scratch(bench_settings, topology, options.keep) as workdir:
        progress(f"database {params['dbname']}, namespace {namespace}, worker logs in {workdir}")
        migrate(database_url, settings.migrations_dir)
        connect_declared(bench_settings, "bench", topology).release()
        with psycopg.connect(database_url, autocommit=True) as connection:
            workflow = load_workflow(connection)
        workload = plan_workload(
            workflow,
            orders=options.orders,
            commands=options.commands,
            duplicates=options.duplicates,
            invalid=options.invalid,
            prefix=f"B{run_id}",
        )
        observer = EventObserver(
            settings.amqp_url, topology.events_exchange, f"{namespace}.bench-events"
        )
        workers = _start_workers(bench_settings, workdir)
        try:
            observed = Observed()
            progress(f"registering {options.orders} orders")
            _publish_and_observe(
                settings, topology, workdir, workload.registrations,
                rate=None, observer=observer, observed=observed,
            )  # fmt: skip
            cpu_before = {name: _cpu_seconds(proc) for name, proc in workers.items()}
            progress(
                f"publishing {len(workload.changes)} status changes"
                + (f" at {options.rate:g}/s" if options.rate else "")
            )
            sent_at, nacked = _publish_and_observe(
                settings, topology, workdir, workload.changes,
                rate=options.rate, observer=observer, observed=observed,
            )  # fmt: skip
            usage = {
                name: WorkerUsage(cpu_seconds=_cpu_seconds(proc) - cpu_before[name])
                for name, proc in workers.items()
            }
        finally:
            peaks = _stop_workers(workers)
            observer.close()
        for name, peak in peaks.items():
            usage.setdefault(name, WorkerUsage()).peak_rss_mb = peak
        distinct = [message.command_id for message in workload.changes]
        first_sent = min(sent_at[i] for i in distinct)
        last_event = max((observed.first_seen.get(i, 0.0) for i in distinct), default=first_sent)
        latencies = [
            1000 * (observed.first_seen[i] - sent_at[i])
            for i in workload.expected
            if i in observed.first_seen
        ]
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
            seconds=last_event - first_sent,
            latencies_ms=latencies,
            workers=usage,
            observed=observed,
            verdict=verdict,
            nacked=nacked,
            namespace=namespace,
            database=str(params["dbname"]),
            ceiling=ceiling,
            settings={"batch_size": settings.batch_size, "batch_wait_ms": settings.batch_wait_ms},
        )


def _publish_and_observe(
    settings: Settings,
    topology: Topology,
    workdir: Path,
    messages: list[PlannedMessage],
    *,
    rate: float | None,
    observer: EventObserver,
    observed: Observed,
) -> tuple[dict[str, float], int]:
    plan, report = workdir / "plan.jsonl", workdir / "sent.json"
    write_plan(plan, messages)
    load = subprocess.Popen(
        [sys.executable, "-m", "worker.bench.load", settings.amqp_url,
         topology.commands_exchange, str(plan), str(report), str(rate or 0)],
    )  # fmt: skip
    try:
        complete = observer.collect(observed, {m.command_id for m in messages}, STALL_SECONDS)
    finally:
        if load.wait(timeout=STALL_SECONDS) != 0:
            raise RuntimeError(f"the load generator failed with exit status {load.returncode}")
    if not complete:
        missing = len({m.command_id for m in messages} - observed.first_seen.keys())
        raise RuntimeError(f"no event arrived for {STALL_SECONDS:g}s; {missing} still missing")
    sent = json.loads(report.read_text(encoding="utf-8"))
    return sent["sent_at"], sent["nacked"]


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


def _cpu_seconds(process: subprocess.Popen[bytes]) -> float:
    times = psutil.Process(process.pid).cpu_times()
    return float(times.user + times.system)


def _stop_workers(workers: dict[str, subprocess.Popen[bytes]]) -> dict[str, float]:
    """Stop each worker; return its peak resident memory in MB, as the kernel counted it."""
    peaks = {name: _peak_rss_mb(process.pid) for name, process in workers.items()}
    for process in workers.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in workers.values():
        process.wait(timeout=60)
    return peaks


def _peak_rss_mb(pid: int) -> float:
    """VmHWM of a running process (Linux): its high-water mark since it started the worker."""
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def _scratch(settings: Settings, topology: Topology, keep: bool) -> Iterator[Path]:
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
