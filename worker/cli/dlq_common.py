"""What the `dlq` commands share: time and duration options, the store, and its errors."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from worker.cli.errors import UsageFailure
from worker.config import Settings
from worker.db.connection import connect
from worker.db.current_state import PostgresCurrentState
from worker.db.dead_letters import PostgresDeadLetterStore
from worker.db.errors import translated
from worker.durations import parse_duration
from worker.services.dead_letters import UnknownReason

STATES = ("dead", "replayed", "purged")


class Moment(click.ParamType[datetime, Any]):
    """A point in time: ISO 8601 (`2026-11-26`, `2026-11-26T14:00:00+08:00`) or `2h` ago."""

    name = "TIME"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return datetime.now(UTC) - parse_duration(value)
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is neither ISO 8601 nor a duration such as 2h or 7d", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Duration(click.ParamType[timedelta, Any]):
    """A duration such as `30m`, `12h` or `7d`."""

    name = "DURATION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


@contextmanager
def open_store(
    settings: Settings,
) -> Iterator[tuple[PostgresDeadLetterStore, PostgresCurrentState]]:
    """The store and the current-state reads on one connection, errors turned into one line."""
    try:
        with translated():
            conn = connect(settings, "cli", autocommit=True)
        with conn:
            yield PostgresDeadLetterStore(conn), PostgresCurrentState(conn)
    except UnknownReason as error:
        raise UsageFailure(f"--reason: {error}", option="--reason") from error


def one_selector(**selectors: Any) -> None:
    given = [name for name, value in selectors.items() if value]
    if len(given) != 1:
        names = " | ".join(f"--{name.replace('_', '-')}" for name in selectors)
        raise click.UsageError(f"choose exactly one of {names}")
