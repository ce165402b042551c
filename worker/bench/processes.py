"""What every benchmark run does with processes: publish and observe, CPU, peak memory."""

import json
import signal
import subprocess
import sys
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import psutil

from worker.bench import server_cpu
from worker.bench.load import write_plan
from worker.bench.observer import EventObserver, Observed
from worker.bench.workload import PlannedMessage
from worker.config import Settings
from worker.messaging.topology import Topology

STALL_SECONDS = 60.0
"""A run in which no event arrives for this long has failed."""


@dataclass
class WorkerUsage:
    cpu_seconds: float = 0.0
    peak_rss_mb: float = 0.0


def publish_and_observe(
    amqp_url: str,
    commands_exchange: str,
    workdir: Path,
    messages: list[PlannedMessage],
    *,
    rate: float | None,
    observer: EventObserver,
    observed: Observed,
) -> tuple[dict[str, float], int]:
    """Publish `messages` from the load generator's process; wait for each command's event.

    Returns when each command was first sent, and how many publishes the broker refused.
    """
    plan, report = workdir / "plan.jsonl", workdir / "sent.json"
    write_plan(plan, messages)
    load = subprocess.Popen(
        [sys.executable, "-m", "worker.bench.load", amqp_url,
         commands_exchange, str(plan), str(report), str(rate or 0)],
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


def cpu_seconds(process: subprocess.Popen[bytes]) -> float:
    times = psutil.Process(process.pid).cpu_times()
    return float(times.user + times.system)


def stop_processes(processes: dict[str, subprocess.Popen[bytes]]) -> dict[str, float]:
    """Stop each process; return its peak resident memory in MB, as the kernel counted it."""
    peaks = {name: _peak_rss_mb(process.pid) for name, process in processes.items()}
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes.values():
        process.wait(timeout=60)
    return peaks


def _peak_rss_mb(pid: int) -> float:
    """VmHWM of a running process (Linux): its high-water mark since it started."""
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def timing(
    sent_at: dict[str, float], observed: Observed, command_ids: list[str]
) -> tuple[float, list[float]]:
    """Seconds from the first publish to the last command's first event, and each latency."""
    first_sent = min(sent_at[i] for i in command_ids)
    last_event = max((observed.first_seen.get(i, 0.0) for i in command_ids), default=first_sent)
    latencies = [
        1000 * (observed.first_seen[i] - sent_at[i])
        for i in dict.fromkeys(command_ids)
        if i in observed.first_seen
    ]
    return last_event - first_sent, latencies


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class MeasuredLoad:
    """What publishing the status changes cost: when each was sent, and everyone's CPU."""

    sent_at: dict[str, float]
    nacked: int
    usage: dict[str, WorkerUsage]
    servers: dict[str, float]


def publish_measured(
    settings: Settings,
    topology: Topology,
    workdir: Path,
    messages: list[PlannedMessage],
    *,
    rate: float | None,
    processes: dict[str, subprocess.Popen[bytes]],
    observer: EventObserver,
    observed: Observed,
    databases: list[str],
) -> MeasuredLoad:
    """Publish `messages` and wait for their events, measuring the CPU of `processes`
    and of the servers (the broker, and PostgreSQL's backends of `databases`) meanwhile."""
    before = {name: cpu_seconds(process) for name, process in processes.items()}
    servers_before = server_cpu.snapshot(settings.database_url, databases)
    sent_at, nacked = publish_and_observe(
        settings.amqp_url, topology.commands_exchange, workdir, messages,
        rate=rate, observer=observer, observed=observed,
    )  # fmt: skip
    usage = {
        name: WorkerUsage(cpu_seconds=cpu_seconds(process) - before[name])
        for name, process in processes.items()
    }
    servers = server_cpu.used_between(
        servers_before, server_cpu.snapshot(settings.database_url, databases)
    )
    return MeasuredLoad(sent_at, nacked, usage, servers)
