"""Faults a scenario injects into the servers themselves, and the lock that guards the shared ones.

Closing one of our own connections or sessions touches only the test. Raising a
memory alarm or restarting RabbitMQ touches everyone on the machine: those run
only while holding the shared-broker lock, and always put things back.
"""

import fcntl
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

BROKER_LOCK = Path(tempfile.gettempdir()) / "order-status-shared-broker.lock"
"""Held while a fault changes the whole broker (an alarm, a restart), so that two test runs
on one machine never do it at once; `ORDERS_TEST_BROKER_LOCK` names another file."""
LOCK_WAIT_SECONDS = 600


@contextmanager
def broker_lock() -> Iterator[None]:
    """Hold the shared-broker lock, unless a process this one runs under holds it already."""
    if _held_by_an_ancestor():
        yield
        return
    lock = _lock_path()
    with lock.open("a") as handle:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{lock} stayed locked {LOCK_WAIT_SECONDS}s") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_path() -> Path:
    return Path(os.environ.get("ORDERS_TEST_BROKER_LOCK") or BROKER_LOCK)


def _held_by_an_ancestor() -> bool:
    """Whether `flock LOCK ...` started the command this process runs under."""
    lock = _lock_path()
    for process in [psutil.Process(), *psutil.Process().parents()]:
        try:
            if any(Path(f.path) == lock for f in process.open_files()):
                return True
        except psutil.Error:
            continue
    return False


def rabbitmqctl(*args: str, timeout: float = 60) -> str:
    completed = subprocess.run(
        ["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout, check=True
    )
    return completed.stdout


def broker_connections(namespace: str, role: str) -> list[str]:
    """The pids of the broker connections named `order-status:{namespace}:{role}`.

    Read from the plain listing: its pids are in the form `close_connection` takes.
    """
    marker = f'{{"connection_name","order-status:{namespace}:{role}"}}'
    listed = rabbitmqctl("list_connections", "pid", "client_properties", "-q", "--no-table-headers")
    return [line.split("\t", 1)[0] for line in listed.splitlines() if marker in line]


def close_broker_connections(namespace: str, role: str) -> int:
    """Have the broker close the role's connections, as an operator or a policy would."""
    pids = broker_connections(namespace, role)
    for pid in pids:
        rabbitmqctl("close_connection", pid, "closed by a fault test")
    return len(pids)


def memory_watermark() -> str:
    """The broker's memory high watermark as `set_vm_memory_high_watermark` takes it back."""
    value = rabbitmqctl("eval", "vm_memory_monitor:get_vm_memory_high_watermark().", "-q").strip()
    if value.startswith("{absolute"):
        return "absolute " + value.strip("{}").split(",")[1].strip()
    return value


@contextmanager
def memory_alarm() -> Iterator[None]:
    """Raise the broker's memory alarm (publishers blocked); put the watermark back after."""
    with broker_lock():
        before = memory_watermark()
        try:
            rabbitmqctl("set_vm_memory_high_watermark", "0.0000001")
            yield
        finally:
            rabbitmqctl("set_vm_memory_high_watermark", *before.split())


@contextmanager
def broker_stopped() -> Iterator[None]:
    """Stop the RabbitMQ application, and start it again on leaving."""
    with broker_lock():
        try:
            rabbitmqctl("stop_app", timeout=120)
            yield
        finally:
            rabbitmqctl("start_app", timeout=180)
            rabbitmqctl("await_startup", timeout=180)


def terminate_sessions(database_url: str, namespace: str, role: str | None = None) -> int:
    """pg_terminate_backend every session of the namespace's workers (or of one role)."""
    pattern = f"order-status:{namespace}:{role or '%'}"
    with psycopg.connect(database_url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name LIKE %s AND pid <> pg_backend_pid()",
            (pattern,),
        ).fetchall()
    return len(rows)


def set_read_only(database_url: str, read_only: bool) -> None:
    """Make the test's own database read-only for new sessions (or writable again)."""
    name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    # This session must be writable itself, whatever the database's default has become.
    writable = "-c default_transaction_read_only=off"
    with psycopg.connect(database_url, autocommit=True, options=writable) as connection:
        connection.execute(
            sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = {}").format(
                sql.Identifier(str(name)), sql.SQL("on" if read_only else "off")
            )
        )
