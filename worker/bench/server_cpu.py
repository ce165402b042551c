"""CPU time of the servers a run uses: RabbitMQ's and PostgreSQL's processes on this host.

Read with psutil at the start and the end of a run's timed phase:
- RabbitMQ: every `beam.smp` process (the broker serves every user of the
  machine: on a shared machine its figure includes their traffic);
- PostgreSQL: the client backends connected to the run's own database(s), plus
  the server's own processes that every commit uses (WAL writer, checkpointer,
  background writer, autovacuum), found in `pg_stat_activity`.
A process that starts during the phase counts with all its CPU; one that ends
during it is lost (the runs keep their connections open throughout).
Processes that cannot be read (another host, another PID namespace) count
nothing, and the figure says so by being absent.
"""

from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field

import psutil
import psycopg
from psycopg.conninfo import make_conninfo

RABBITMQ = "rabbitmq"
POSTGRESQL = "postgresql"
BROKER_PROCESS = "beam.smp"

SERVER_PIDS = """
SELECT pid FROM pg_stat_activity
WHERE datname = ANY(%(databases)s) OR backend_type <> 'client backend'
"""


@dataclass
class Snapshot:
    """CPU seconds so far of each server process, by server."""

    seconds: dict[str, dict[int, float]] = field(default_factory=dict)


def snapshot(database_url: str, databases: Iterable[str]) -> Snapshot:
    broker = [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == BROKER_PROCESS]
    maintenance = make_conninfo(database_url, dbname="postgres")
    with psycopg.connect(maintenance, autocommit=True) as connection:
        postgres = [
            int(row[0])
            for row in connection.execute(SERVER_PIDS, {"databases": list(databases)})
            if row[0] is not None
        ]
    return Snapshot({RABBITMQ: _cpu_of(broker), POSTGRESQL: _cpu_of(postgres)})


def used_between(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds each server used between two snapshots (only servers it could read)."""
    used = {}
    for server, now in after.seconds.items():
        if now:
            then = before.seconds.get(server, {})
            used[server] = sum(seconds - then.get(pid, 0.0) for pid, seconds in now.items())
    return used


def _cpu_of(pids: Iterable[int]) -> dict[int, float]:
    seconds = {}
    for pid in pids:
        with suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            seconds[pid] = float(times.user + times.system)
    return seconds
