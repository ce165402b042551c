"""Opening connections to PostgreSQL, and keeping one alive across failures."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from worker.config import Settings
from worker.db.errors import translated
from worker.errors import Unavailable

Connection = psycopg.Connection[tuple[Any, ...]]


def connect(settings: Settings, role: str, *, autocommit: bool = False) -> Connection:
    """Open a connection named after its `role` in pg_stat_activity, with our timeouts."""
    return psycopg.connect(
        settings.database_url,
        autocommit=autocommit,
        application_name=f"order-status:{settings.namespace}:{role}",
        connect_timeout=5,
        # Notice a server that went silent (a partition, a dead host) within
        # about half a minute, instead of waiting on the kernel's defaults.
        keepalives=1,
        keepalives_idle=10,
        keepalives_interval=5,
        keepalives_count=3,
        tcp_user_timeout=30_000,
        options=(
            f"-c lock_timeout={settings.lock_timeout_ms}"
            f" -c statement_timeout={settings.statement_timeout_ms}"
        ),
    )


class Database:
    """One connection for one worker, opened on first use and again after it breaks."""

    def __init__(self, settings: Settings, role: str, *, autocommit: bool = False) -> None:
        self._settings = settings
        self._role = role
        self._autocommit = autocommit
        self._connection: Connection | None = None

    def connection(self) -> Connection:
        """Return a usable connection, reconnecting if the last one was lost."""
        current = self._connection
        if current is None or current.closed or current.broken:
            self.close()
            current = connect(self._settings, self._role, autocommit=self._autocommit)
            self._connection = current
        return current

    def close(self) -> None:
        """Close the connection, if any; a broken one is simply dropped."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    @contextmanager
    def use(self) -> Iterator[Connection]:
        """The connection, with driver errors raised as the project's own.

        A connection that failed because the server did is dropped, so the
        next use opens a fresh one (after a failover, to the new primary).
        """
        try:
            with translated():
                yield self.connection()
        except Unavailable:
            self.close()
            raise
