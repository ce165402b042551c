"""RabbitMQ misbehaving under the workers: connections closed, publishers blocked, restarted,
and a peer that stalls without closing.

The memory alarm and the restart touch the shared broker: they run under the
machine's CPU lock and always put the broker back.
"""

import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.support.fault_run import FaultRun
from tests.support.injected import broker_stopped, close_broker_connections, memory_alarm
from tests.support.processes import wait_until
from tests.support.proxy import CuttableProxy, through
from tests.support.workload import order_walks
from worker.config import Settings

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]


def unpublished(run: FaultRun) -> int:
    with psycopg.connect(run.settings.database_url) as db:
        row = db.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()
    assert row is not None
    return int(row[0])


def test_connections_closed_by_the_broker_are_reopened(fault_run: FaultRun) -> None:
    commands = order_walks(300, 20, seed=41)
    fault_run.start()
    publishing = fault_run.publish_in_background(commands)
    closed = 0
    for step, role in enumerate(("status-worker", "relay", "status-worker"), start=1):
        fault_run.wait_for_progress(step * len(commands) // 5)
        closed += close_broker_connections(fault_run.topology.namespace, role)
    assert closed >= 3
    fault_run.figures["connections_closed"] = closed
    publishing.join(timeout=120)
    fault_run.finish()


def test_a_memory_alarm_blocks_the_relay_which_waits_and_recovers(fault_run: FaultRun) -> None:
    commands = order_walks(100, 10, seed=42)
    fault_run.start(["status-worker", "dead-letter-ingester"])
    fault_run.producer.send(commands)
    assert wait_until(lambda: fault_run.outstanding()[0] == 0, 60)
    waiting = unpublished(fault_run)
    assert waiting > 0
    with memory_alarm():
        fault_run.workers["relay"].start()
        time.sleep(5)
        blocked = unpublished(fault_run)
        assert fault_run.workers["relay"].alive(), fault_run.workers["relay"].log_tail()
    fault_run.figures["unpublished_during_alarm"] = blocked
    assert blocked > 0  # the broker held the relay's publishes back
    fault_run.finish()


def test_a_broker_restart_is_waited_out(fault_run: FaultRun) -> None:
    commands = order_walks(300, 20, seed=43)
    half = len(commands) // 2
    fault_run.start()
    fault_run.producer.send(commands[:half])
    fault_run.wait_for_progress(half // 2)
    with broker_stopped():
        time.sleep(3)
    fault_run.producer.send(commands[half:])
    fault_run.finish(drain_timeout=240)
    for role, worker in fault_run.workers.items():
        assert worker.starts == 1, f"{role} had to be restarted"


@pytest.fixture
def broker_proxy_for_workers(fault_settings: Settings) -> Iterator[CuttableProxy]:
    proxy = CuttableProxy("127.0.0.1", 5672)
    yield proxy
    proxy.close()


def test_a_peer_that_stalls_past_the_heartbeat_is_left_and_reconnected(
    fault_run: FaultRun, broker_proxy_for_workers: CuttableProxy
) -> None:
    proxy = broker_proxy_for_workers
    fault_run.use_settings(through(proxy, fault_run.settings, heartbeat_seconds=2))
    commands = order_walks(300, 20, seed=44)
    fault_run.start()
    publishing = fault_run.publish_in_background(commands)
    fault_run.wait_for_progress(len(commands) // 4)
    accepted = proxy.connections_accepted
    proxy.stall()
    time.sleep(10)  # several heartbeat intervals: no data, no FIN
    proxy.resume()
    publishing.join(timeout=120)
    fault_run.finish()
    assert proxy.connections_accepted > accepted  # they gave the silent peer up and came back
