"""PostgreSQL misbehaving under the workers: sessions killed, refused, read-only, stalled."""

import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from tests.support.fault_run import FaultRun
from tests.support.injected import set_read_only, terminate_sessions
from tests.support.proxy import CuttableProxy
from tests.support.workload import order_walks
from worker.config import Settings

pytestmark = pytest.mark.timeout(600)

QUICK = pytest.param(30, 10, 1, id="quick")
FULL = pytest.param(300, 20, 3, id="full", marks=pytest.mark.faults)


@pytest.mark.parametrize(("orders", "changes", "times"), [QUICK, FULL])
def test_terminated_backends_lose_and_double_nothing(
    fault_run: FaultRun, orders: int, changes: int, times: int
) -> None:
    commands = order_walks(orders, changes, seed=31)
    fault_run.start()
    publishing = fault_run.publish_in_background(commands)
    terminated = 0
    for step in range(1, times + 1):
        fault_run.wait_for_progress(step * len(commands) // (times + 2))
        terminated += terminate_sessions(
            fault_run.settings.database_url, fault_run.topology.namespace
        )
    assert terminated >= times  # at least the status worker's session each time
    fault_run.figures["sessions_terminated"] = terminated
    publishing.join(timeout=120)
    fault_run.finish()


@pytest.fixture
def database_proxy(fault_settings: Settings) -> Iterator[CuttableProxy]:
    proxy = CuttableProxy("127.0.0.1", 5432)
    yield proxy
    proxy.close()


def through_database_proxy(settings: Settings, proxy: CuttableProxy) -> Settings:
    url = make_conninfo(settings.database_url, host="127.0.0.1", port=str(proxy.port))
    return settings.model_copy(update={"database_url": url})


@pytest.mark.faults
def test_connections_refused_for_a_while_are_waited_out(
    fault_run: FaultRun, database_proxy: CuttableProxy
) -> None:
    fault_run.use_settings(through_database_proxy(fault_run.settings, database_proxy))
    commands = order_walks(300, 20, seed=32)
    fault_run.start()
    publishing = fault_run.publish_in_background(commands)
    fault_run.wait_for_progress(len(commands) // 4)
    database_proxy.refuse()
    time.sleep(5)
    database_proxy.accept_again()
    publishing.join(timeout=120)
    fault_run.finish()
    assert database_proxy.connections_accepted > len(fault_run.workers)  # they reconnected


@pytest.mark.faults
def test_a_read_only_database_is_waited_out(fault_run: FaultRun) -> None:
    url = fault_run.settings.database_url
    namespace = fault_run.topology.namespace
    commands = order_walks(300, 20, seed=33)
    fault_run.start()
    publishing = fault_run.publish_in_background(commands)
    fault_run.wait_for_progress(len(commands) // 4)
    try:
        set_read_only(url, True)
        terminate_sessions(url, namespace)  # new sessions pick the setting up
        time.sleep(4)
    finally:
        set_read_only(url, False)
    terminate_sessions(url, namespace)
    publishing.join(timeout=120)
    fault_run.finish()
    log = fault_run.workers["status-worker"].log_text()
    assert "read-only transaction" in log  # it met the fault, and waited it out


@pytest.mark.faults
def test_a_statement_stalled_past_the_timeout_is_retried_in_place(fault_run: FaultRun) -> None:
    fault_run.use_settings(fault_run.settings.model_copy(update={"statement_timeout_ms": 1000}))
    commands = order_walks(50, 20, seed=34)
    numbers = sorted({command.order_number for command in commands})
    fault_run.start()
    fault_run.producer.send(commands[: len(commands) // 3])
    fault_run.wait_for_progress(len(commands) // 4)
    with psycopg.connect(fault_run.settings.database_url) as holder:
        # Hold every order's row lock: the next batches stall until the statement timeout.
        holder.execute("SELECT 1 FROM orders WHERE order_number = ANY(%s) FOR UPDATE", (numbers,))
        publishing = fault_run.publish_in_background(commands[len(commands) // 3 :])
        time.sleep(2.5)
    publishing.join(timeout=120)
    fault_run.finish()
    assert "statement timeout" in fault_run.workers["status-worker"].log_text()
