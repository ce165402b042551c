"""Database failures translated, in one place, into the project's own types (`worker.errors`).

- A data or integrity error (SQLSTATE classes 22 and 23) may be the command's
  own fault: `Refused`. The batch is split, and a command that still fails
  alone is dead-lettered.
- A lock timeout, deadlock, serialization failure or statement timeout is
  `Contention` around this batch's rows: retried in place a few times, then
  the commands that still meet it wait in the retry tiers.
- A fault of the setup that will not clear by itself (a missing database,
  role, privilege or schema; a login or certificate refused on connecting) is
  `Misconfigured`, naming `ORDERS_DATABASE_URL`.
- Every other database error is `Unavailable`, the surroundings' fault (a
  connection lost or a backend terminated, a server restarting, a read-only
  server after a failover): the worker holds its messages and retries for as
  long as it takes, so nothing valid is ever dead-lettered because the
  database was unwell.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import errors

from worker.errors import (
    DATABASE_SETTING,
    ConcurrentWrite,
    Contention,
    Misconfigured,
    OrderStatusError,
    Refused,
    Unavailable,
)
from worker.redaction import redact


class ConcurrentRegistration(Exception):
    """Another transaction registered the same order number first; apply again."""


class ConcurrentClaim(Exception):
    """Another transaction recorded one of the batch's command ids first; apply again."""


def is_command_fault(error: BaseException) -> bool:
    """The database refused what a command asked for, not the request itself."""
    return isinstance(error, psycopg.DataError | psycopg.IntegrityError)


CONTENTION = (
    psycopg.errors.LockNotAvailable,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
    psycopg.errors.QueryCanceled,
)


def is_contention(error: BaseException) -> bool:
    """A transient fault of these rows, not of the database: other batches may go through."""
    return isinstance(error, CONTENTION)


# What a refused connection says when it will not clear by itself. Only messages about
# opening a connection count: one lost mid-transaction ("SSL SYSCALL error: EOF
# detected", "server closed the connection unexpectedly") is an outage.
_CONNECTING = ("connection failed:", "connection is bad:")
_LASTING_CONNECT_FAILURES = (
    "does not exist",  # database or role
    "authentication failed",
    "no pg_hba.conf entry",
    "invalid",  # an option or sslmode value
    "certificate",
)
# SQLSTATE classes and codes that name a lasting fault of the setup, not of the moment.
_LASTING_SQLSTATES = ("28", "3D", "42501", "42P01", "42883", "0A")


def translate(error: BaseException) -> OrderStatusError:
    """The project's own error for a psycopg error (or one of ours, unchanged)."""
    if isinstance(error, OrderStatusError):
        return error
    text = redact(" ".join(str(error).split())) or type(error).__name__
    if isinstance(error, ConcurrentRegistration | ConcurrentClaim):
        return ConcurrentWrite(text)
    if isinstance(error, errors.UndefinedTable):
        return Misconfigured(
            DATABASE_SETTING,
            "the database has no order-status schema; run `order-status migrate` first",
        )
    named = f"{type(error).__name__}: {text}"
    if is_contention(error):
        return Contention(named, kind=type(error).__name__)
    if is_command_fault(error):
        return Refused(named)
    lasting = _lasting_setup_fault(error, text)
    return Misconfigured(DATABASE_SETTING, lasting) if lasting else Unavailable("PostgreSQL", named)


def _lasting_setup_fault(error: BaseException, text: str) -> str | None:
    """What is wrong with the setup, when `error` will not clear by itself; else None."""
    sqlstate = getattr(error, "sqlstate", None) or ""
    if isinstance(error, psycopg.ProgrammingError) and not sqlstate:
        return f"the database URL is not usable: {text}"
    if sqlstate.startswith(_LASTING_SQLSTATES):
        return f"PostgreSQL refused: {text}"
    passing = "starting up" in text or "shutting down" in text
    refused_for_good = text.startswith(_CONNECTING) and any(
        marker in text for marker in _LASTING_CONNECT_FAILURES
    )
    if isinstance(error, psycopg.OperationalError) and not sqlstate and not passing:
        return f"cannot connect to PostgreSQL: {text}" if refused_for_good else None
    return None


@contextmanager
def translated() -> Iterator[None]:
    """Raise the project's own error type for any psycopg error inside the block."""
    try:
        yield
    except psycopg.Error as error:
        raise translate(error) from error
    except (ConcurrentRegistration, ConcurrentClaim) as error:
        raise translate(error) from error
