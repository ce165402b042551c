"""The soak (`make soak`, never in CI): a steady rate for an hour with a fault every few
minutes; resident memory and open connections sampled and printed, to be seen flat.

SOAK_SECONDS shortens it (e.g. SOAK_SECONDS=300 make soak). Every loop is bounded
by the clock, so it stops by itself.
"""

import os
import signal
import time
from itertools import cycle
from typing import Any

import psycopg
import pytest

from tests.support.fault_run import FaultRun
from tests.support.injected import broker_connections, terminate_sessions
from tests.support.workload import order_walks

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "3600"))
RATE_PER_SECOND = 200
FAULT_EVERY_SECONDS = 300
SAMPLE_EVERY_SECONDS = 60

pytestmark = [pytest.mark.soak, pytest.mark.timeout(int(SOAK_SECONDS) + 900)]


def database_sessions(run: FaultRun) -> int:
    with psycopg.connect(run.settings.database_url) as db:
        row = db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s",
            (f"order-status:{run.topology.namespace}:%",),
        ).fetchone()
    assert row is not None
    return int(row[0])


def inject(run: FaultRun, fault: str) -> None:
    if fault == "kill-status-worker":
        worker = run.workers["status-worker"]
        worker.kill(signal.SIGKILL)
        worker.wait(10)
        worker.start()
    elif fault == "kill-relay":
        worker = run.workers["relay"]
        worker.kill(signal.SIGKILL)
        worker.wait(10)
        worker.start()
    elif fault == "terminate-sessions":
        terminate_sessions(run.settings.database_url, run.topology.namespace)


def test_a_steady_rate_with_periodic_faults_stays_flat(fault_run: FaultRun) -> None:
    fault_run.start()
    faults = cycle(["kill-status-worker", "terminate-sessions", "kill-relay"])
    began = time.monotonic()
    next_fault = began + FAULT_EVERY_SECONDS
    next_sample = began + 10  # once the workers are up
    seed = 0
    samples: list[dict[str, Any]] = []
    while time.monotonic() - began < SOAK_SECONDS:
        second = time.monotonic()
        seed += 1
        fault_run.producer.send(order_walks(RATE_PER_SECOND // 10, 9, seed=seed, duplicates=0))
        fault_run.events.collect(idle_seconds=0.05)
        now = time.monotonic()
        if now >= next_sample:
            sample = {
                "minute": round((now - began) / 60, 1),
                "rss_mb": {r: round(w.peak_rss_mb(), 1) for r, w in fault_run.workers.items()},
                "broker_connections": sum(
                    len(broker_connections(fault_run.topology.namespace, role))
                    for role in fault_run.workers
                ),
                "database_sessions": database_sessions(fault_run),
                "confirmed": len(fault_run.producer.confirmed),
            }
            samples.append(sample)
            print(f"soak: {sample}", flush=True)
            next_sample = now + SAMPLE_EVERY_SECONDS
        if now >= next_fault:
            fault = next(faults)
            print(f"soak: injecting {fault}", flush=True)
            inject(fault_run, fault)
            next_fault = now + FAULT_EVERY_SECONDS
        time.sleep(max(0.0, 1.0 - (time.monotonic() - second)))
    fault_run.finish(drain_timeout=600)
    connections = [sample["broker_connections"] for sample in samples]
    assert max(connections) <= len(fault_run.workers) * 3, samples
