"""Driver errors become the project's own types at the boundary, sorted by what to do."""

import amqp.exceptions
import psycopg
import pytest
from psycopg import errors

from worker.db.errors import ConcurrentRegistration
from worker.db.errors import translate as from_database
from worker.errors import Contention, Misconfigured, Refused, Unavailable
from worker.messaging.broker import BrokerConnectionLost
from worker.messaging.errors import translate as from_broker
from worker.messaging.publisher import MessageUnroutable

CONNECTING = 'connection failed: connection to server at "127.0.0.1", port 5432 failed: '


@pytest.mark.parametrize(
    "error",
    [
        errors.ForeignKeyViolation("fk"),
        errors.CheckViolation("check"),
        errors.NumericValueOutOfRange("range"),
        psycopg.DataError("client-side data error"),
    ],
)
def test_data_and_integrity_errors_are_refusals_of_the_data(error: Exception) -> None:
    assert isinstance(from_database(error), Refused)


@pytest.mark.parametrize(
    "error",
    [
        errors.DeadlockDetected("deadlock"),
        errors.LockNotAvailable("lock"),
        errors.SerializationFailure("serialization"),
        errors.QueryCanceled("statement timeout"),
    ],
)
def test_locks_deadlocks_and_timeouts_are_contention(error: Exception) -> None:
    assert isinstance(from_database(error), Contention)


@pytest.mark.parametrize(
    "error",
    [
        errors.ReadOnlySqlTransaction("read only"),
        errors.AdminShutdown("shutdown"),
        psycopg.OperationalError("connection lost"),
        psycopg.OperationalError(
            'connection failed: connection to server at "127.0.0.1", port 5999 failed: '
            "Connection refused"
        ),
        psycopg.OperationalError(f"{CONNECTING}FATAL: the database system is starting up"),
        psycopg.OperationalError("consuming input failed: SSL SYSCALL error: EOF detected"),
        psycopg.OperationalError("server closed the connection unexpectedly"),
        ConcurrentRegistration("SO-1"),
    ],
)
def test_outages_and_races_are_unavailable_and_clear_by_themselves(error: Exception) -> None:
    assert isinstance(from_database(error), Unavailable)


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (errors.UndefinedTable("no table"), "order-status migrate"),
        (errors.InsufficientPrivilege("permission denied for table orders"), "permission"),
        (psycopg.ProgrammingError('missing "=" after "not-a-url"'), "not usable"),
        (
            psycopg.OperationalError(f'{CONNECTING}FATAL:  database "nosuch" does not exist'),
            "nosuch",
        ),
        (psycopg.OperationalError(f"{CONNECTING}FATAL:  password authentication failed"), "auth"),
    ],
)
def test_faults_that_last_are_misconfiguration_naming_the_setting(
    error: Exception, says: str
) -> None:
    translated = from_database(error)
    assert isinstance(translated, Misconfigured)
    assert translated.setting == "ORDERS_DATABASE_URL"
    assert says in str(translated)


@pytest.mark.parametrize(
    "error",
    [
        amqp.exceptions.PreconditionFailed("consumer timeout"),
        amqp.exceptions.ConnectionForced("shutdown"),
        ConnectionResetError(),
        ConnectionRefusedError(111, "Connection refused"),
    ],
)
def test_broker_failures_are_unavailable(error: Exception) -> None:
    assert isinstance(from_broker(error), Unavailable)


def test_our_own_broker_failures_are_already_unavailable() -> None:
    assert isinstance(BrokerConnectionLost("heartbeat"), Unavailable)
    assert isinstance(MessageUnroutable("no route"), Unavailable)


@pytest.mark.parametrize(
    "error",
    [
        amqp.exceptions.AccessRefused("(403) ACCESS_REFUSED - Login was refused"),
        amqp.exceptions.NotAllowed("(530) NOT_ALLOWED - vhost nope not found"),
    ],
)
def test_a_refused_login_or_missing_vhost_is_misconfiguration(error: Exception) -> None:
    translated = from_broker(error)
    assert isinstance(translated, Misconfigured)
    assert translated.setting == "ORDERS_AMQP_URL"
