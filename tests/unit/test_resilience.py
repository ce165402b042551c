"""Which failures are retried, and how a worker's sessions start again."""

import logging
import threading
import time

import amqp.exceptions
import psycopg
import pytest
from psycopg import errors

from worker.db.errors import ConcurrentRegistration, is_command_fault, is_transient_database_error
from worker.messaging.broker import BrokerConnectionLost
from worker.messaging.publisher import MessageUnroutable
from worker.resilience import Stopped, is_recoverable, retry_until_stopped, run_sessions

log = logging.getLogger("test")


@pytest.mark.parametrize(
    "error",
    [
        errors.ForeignKeyViolation("fk"),
        errors.CheckViolation("check"),
        errors.NumericValueOutOfRange("range"),
        psycopg.DataError("client-side data error"),
    ],
)
def test_data_and_integrity_errors_may_be_the_command_s_fault(error: Exception) -> None:
    assert is_command_fault(error)
    assert not is_transient_database_error(error)


@pytest.mark.parametrize(
    "error",
    [
        errors.ReadOnlySqlTransaction("read only"),
        errors.InsufficientPrivilege("denied"),
        errors.UndefinedTable("no table"),
        errors.DeadlockDetected("deadlock"),
        errors.LockNotAvailable("lock"),
        errors.AdminShutdown("shutdown"),
        psycopg.OperationalError("connection lost"),
        ConcurrentRegistration("SO-1"),
    ],
)
def test_every_other_database_error_is_the_surroundings_fault(error: Exception) -> None:
    assert is_transient_database_error(error)
    assert is_recoverable(error)


@pytest.mark.parametrize(
    "error",
    [
        amqp.exceptions.PreconditionFailed("consumer timeout"),
        amqp.exceptions.ConnectionForced("shutdown"),
        BrokerConnectionLost("heartbeat"),
        MessageUnroutable("no route"),
        ConnectionResetError(),
    ],
)
def test_broker_failures_are_recovered_by_reconnecting(error: Exception) -> None:
    assert is_recoverable(error)


@pytest.mark.parametrize("error", [ValueError("bug"), KeyError("bug"), errors.CheckViolation("x")])
def test_bugs_and_bad_data_are_not_recovered_by_reconnecting(error: Exception) -> None:
    assert not is_recoverable(error)


def test_a_session_is_started_again_after_recoverable_failures() -> None:
    stop = threading.Event()
    calls: list[int] = []

    def session() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise psycopg.OperationalError("lost")
        stop.set()

    run_sessions(stop, session, max_wait_seconds=0.01, log=log)
    assert len(calls) == 3


def test_a_failure_reconnecting_cannot_cure_ends_the_worker() -> None:
    def session() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        run_sessions(threading.Event(), session, max_wait_seconds=0.01, log=log)


def test_a_stop_request_ends_a_backoff_at_once() -> None:
    stop = threading.Event()
    calls: list[float] = []
    retrying = retry_until_stopped(
        stop, lambda _error: True, max_wait_seconds=30.0, log=log, keepalive=lambda: None
    )

    def always_failing() -> None:
        calls.append(time.monotonic())
        if len(calls) == 5:  # by now the backoff has grown past a second
            threading.Timer(0.1, stop.set).start()
        raise psycopg.OperationalError("lost")

    with pytest.raises(Stopped):
        retrying(always_failing)
    assert len(calls) == 5, "no attempt after the stop request"


def test_keepalive_runs_while_waiting() -> None:
    stop = threading.Event()
    kept_alive: list[float] = []
    retrying = retry_until_stopped(
        stop, lambda _error: True, 30.0, log, keepalive=lambda: kept_alive.append(time.monotonic())
    )

    def fail_until_kept_alive() -> str:
        if len(kept_alive) < 1:
            raise psycopg.OperationalError("lost")
        return "done"

    assert retrying(fail_until_kept_alive) == "done"
