"""Workers killed mid-run (SIGKILL) or stopped under load (SIGTERM): nothing lost, nothing twice."""

import signal
import threading
import time

import pytest

from contracts import Command
from tests.support.fault_run import FaultRun, inbox_count
from tests.support.processes import wait_until
from tests.support.workload import order_walks

pytestmark = pytest.mark.timeout(600)

QUICK = pytest.param(30, 10, id="quick")
FULL = pytest.param(300, 20, id="full", marks=pytest.mark.faults)


def publish_in_background(run: FaultRun, commands: list[Command]) -> threading.Thread:
    thread = threading.Thread(target=run.producer.send, args=(commands,), daemon=True)
    thread.start()
    return thread


def wait_for_progress(run: FaultRun, at_least: int) -> None:
    assert wait_until(lambda: inbox_count(run.settings.database_url) >= at_least, 60), (
        f"fewer than {at_least} commands were applied within 60s"
    )


@pytest.mark.parametrize(("orders", "changes"), [QUICK, FULL])
def test_the_status_worker_killed_mid_run_loses_and_doubles_nothing(
    fault_run: FaultRun, orders: int, changes: int
) -> None:
    commands = order_walks(orders, changes, seed=11)
    fault_run.start()
    publishing = publish_in_background(fault_run, commands)
    status = fault_run.workers["status-worker"]
    wait_for_progress(fault_run, len(commands) // 4)
    status.kill(signal.SIGKILL)
    assert status.wait(10) == -signal.SIGKILL
    fault_run.figures["applied_before_kill"] = inbox_count(fault_run.settings.database_url)
    status.start()
    publishing.join(timeout=120)
    report = fault_run.finish()
    assert report.confirmed == len({c.command_id for c in commands})


@pytest.mark.faults
def test_the_status_worker_killed_five_times_loses_and_doubles_nothing(
    fault_run: FaultRun,
) -> None:
    commands = order_walks(300, 20, seed=12)
    fault_run.start()
    publishing = publish_in_background(fault_run, commands)
    status = fault_run.workers["status-worker"]
    for kill in range(1, 6):
        wait_for_progress(fault_run, kill * len(commands) // 7)
        status.kill(signal.SIGKILL)
        assert status.wait(10) == -signal.SIGKILL
        status.start()
    publishing.join(timeout=120)
    fault_run.figures["kills"] = 5
    report = fault_run.finish()
    assert report.confirmed == len({c.command_id for c in commands})


@pytest.mark.faults
def test_the_relay_killed_mid_run_loses_no_event(fault_run: FaultRun) -> None:
    commands = order_walks(300, 20, seed=13)
    fault_run.start()
    publishing = publish_in_background(fault_run, commands)
    relay = fault_run.workers["relay"]
    wait_for_progress(fault_run, len(commands) // 3)
    relay.kill(signal.SIGKILL)
    assert relay.wait(10) == -signal.SIGKILL
    time.sleep(1)  # commits pile up in the outbox meanwhile
    relay.start()
    publishing.join(timeout=120)
    fault_run.finish()


@pytest.mark.faults
def test_sigterm_under_load_stops_cleanly_and_loses_nothing(fault_run: FaultRun) -> None:
    commands = order_walks(300, 20, seed=14)
    fault_run.start()
    publishing = publish_in_background(fault_run, commands)
    wait_for_progress(fault_run, len(commands) // 3)
    for worker in fault_run.workers.values():
        worker.kill(signal.SIGTERM)
    exits = {role: worker.wait(30) for role, worker in fault_run.workers.items()}
    assert exits == dict.fromkeys(fault_run.workers, 0), exits
    fault_run.start()
    publishing.join(timeout=120)
    fault_run.finish()
