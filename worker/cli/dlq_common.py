"""What the `dlq` commands share: time and duration options, and small formatting helpers."""

from datetime import UTC, datetime, timedelta
from typing import Any

import click

from worker.config import Settings
from worker.db.connection import Connection, connect
from worker.dead_letter_views import DeadLetterDetail
from worker.durations import parse_duration

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


def open_store(settings: Settings) -> Connection:
    return connect(settings, "cli", autocommit=True)


def when(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def one_selector(**selectors: Any) -> None:
    given = [name for name, value in selectors.items() if value]
    if len(given) != 1:
        names = " | ".join(f"--{name.replace('_', '-')}" for name in selectors)
        raise click.UsageError(f"choose exactly one of {names}")


def replay_summary(entry: DeadLetterDetail) -> str | None:
    if not entry.replay_count:
        return None
    return f"{entry.replay_count} time(s), last {when(entry.replayed_at)} by {entry.replayed_by}"
