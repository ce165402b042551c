"""Database failures, sorted in one place by what the worker should do about them.

- A data or integrity error (SQLSTATE classes 22 and 23) may be the command's
  own fault: the batch is split, and a command that still fails alone is
  dead-lettered.
- A lock timeout, deadlock, serialization failure or statement timeout is
  contention around this batch's rows: retried in place a few times, then the
  commands that still meet it wait in the retry tiers.
- Every other database error is the surroundings' fault (a connection lost
  or a backend terminated, a read-only server after a failover, a missing
  privilege or migration): the worker holds its messages and retries for as
  long as it takes, so nothing valid is ever dead-lettered because the
  database was unwell.
"""

import psycopg


class ConcurrentRegistration(Exception):
    """Another transaction registered the same order number first; apply again."""


class ConcurrentClaim(Exception):
    """Another transaction recorded one of the batch's command ids first; apply again."""


def is_command_fault(error: BaseException) -> bool:
    """The database refused what a command asked for, not the request itself."""
    return isinstance(error, psycopg.DataError | psycopg.IntegrityError)


def is_transient_database_error(error: BaseException) -> bool:
    """A database failure that retrying later can cure."""
    if isinstance(error, ConcurrentRegistration | ConcurrentClaim):
        return True
    return isinstance(error, psycopg.Error) and not is_command_fault(error)


CONTENTION = (
    psycopg.errors.LockNotAvailable,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
    psycopg.errors.QueryCanceled,
)


def is_contention(error: BaseException) -> bool:
    """A transient fault of these rows, not of the database: other batches may go through."""
    return isinstance(error, CONTENTION)


class ContentionPersists(Exception):
    """The work met a lock, deadlock or serialization failure every time it was tried."""

    def __init__(self, error: Exception) -> None:
        super().__init__(repr(error))
        self.error = error
