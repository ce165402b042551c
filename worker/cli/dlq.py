"""`order-status dlq`: inspect, group, replay and purge the dead-letter store.

Browsing reads PostgreSQL only, never a queue. Replaying publishes each message
back to its original exchange and routing key with publisher confirms, and
marks it replayed only after the broker's confirm: an interrupted replay can be
run again, and at worst sends a message twice, which the inbox turns into a
repeat that changes nothing.
"""

import getpass
import json
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import amqp.exceptions
import click
from rich.console import Console
from rich.progress import Progress

from worker.cli.output import ExitCode, console, print_json, table
from worker.config import Settings
from worker.db import dead_letters
from worker.db.connection import Connection, connect
from worker.db.dead_letters import Selection
from worker.db.workflow_store import load_workflow
from worker.dead_letter_views import DeadLetterDetail
from worker.durations import parse_duration
from worker.messaging.broker import connect_declared
from worker.messaging.publisher import ConfirmedPublisher, PublishFailed
from worker.messaging.replay import replay_of
from worker.messaging.topology import Topology
from worker.replay_check import check_replay

STATES = ("dead", "replayed", "purged")
PROGRESS_FROM = 20
"""Replays of at least this many messages show a progress bar."""


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


def _open(settings: Settings) -> Connection:
    return connect(settings, "cli", autocommit=True)


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def _one_selector(**selectors: Any) -> None:
    given = [name for name, value in selectors.items() if value]
    if len(given) != 1:
        names = " | ".join(f"--{name.replace('_', '-')}" for name in selectors)
        raise click.UsageError(f"choose exactly one of {names}")


@click.group()
def dlq() -> None:
    """Inspect, group, replay and purge dead-lettered messages."""


@dlq.command()
@click.option("--all", "everything", is_flag=True, help="Also groups with nothing left dead.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def stats(settings: Settings, *, everything: bool, as_json: bool) -> None:
    """Count stored messages by reason and source queue: the failure groups."""
    with _open(settings) as conn:
        found = dead_letters.groups(conn, everything=everything)
    if as_json:
        print_json(found)
        return
    rows = [
        (g.reason, g.source_queue, g.dead, g.replayed, g.purged, _when(g.oldest), _when(g.newest))
        for g in found
    ]
    columns = ("reason", "source queue", "dead", "replayed", "purged", "oldest", "newest")
    console().print(table(f"{sum(g.dead for g in found)} dead messages", columns, rows))


@dlq.command("list")
@click.option("--reason", help="Only this reason, e.g. schema_violation.")
@click.option("--queue", help="Only messages from this queue, e.g. orders.status-worker.")
@click.option("--order", "order_number", help="Only messages about this order number.")
@click.option("--since", type=Moment(), help="Last failed at or after (ISO 8601, or 2h = ago).")
@click.option("--until", type=Moment(), help="Last failed at or before.")
@click.option("--state", type=click.Choice(STATES), help="Only this state (default: any).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_command(
    settings: Settings,
    *,
    reason: str | None,
    queue: str | None,
    order_number: str | None,
    since: datetime | None,
    until: datetime | None,
    state: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List stored messages, the most recent failure first."""
    selection = Selection(
        reason=reason,
        queue=queue,
        order_number=order_number,
        since=since,
        until=until,
        states=[state] if state else None,
        limit=limit,
    )
    with _open(settings) as conn:
        found = dead_letters.summaries(conn, selection)
    if as_json:
        print_json(found)
        return
    rows = [
        (
            e.id,
            e.state,
            e.reason,
            e.source_queue,
            e.routing_key,
            e.order_number,
            e.message_id,
            e.attempts,
            _when(e.last_failed_at),
        )
        for e in found
    ]
    columns = ("id", "state", "reason", "queue", "routing key", "order", "message id", "tries")
    console().print(table(f"{len(found)} dead letters", (*columns, "last failed"), rows))


@dlq.command()
@click.argument("entry_id", metavar="ID", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def show(settings: Settings, *, entry_id: int, as_json: bool) -> None:
    """Show a stored message: reason, detail, headers and the pretty-printed body."""
    with _open(settings) as conn:
        entry = dead_letters.get(conn, entry_id)
    if entry is None:
        click.echo(f"no dead letter {entry_id}", err=True)
        sys.exit(ExitCode.NOT_FOUND)
    if as_json:
        print_json(entry)
        return
    out = console()
    fields = [
        ("state", entry.state),
        ("reason", entry.reason),
        ("detail", entry.detail),
        ("source queue", entry.source_queue),
        ("exchange", entry.exchange),
        ("routing key", entry.routing_key),
        ("message id", entry.message_id),
        ("correlation id", entry.correlation_id),
        ("type", entry.message_type),
        ("order", entry.order_number),
        ("attempts", entry.attempts),
        ("first failed", _when(entry.first_failed_at)),
        ("last failed", _when(entry.last_failed_at)),
        ("replayed", _replayed(entry)),
        ("purged", f"{_when(entry.purged_at)} by {entry.purged_by}" if entry.purged_at else None),
    ]
    out.print(table(f"dead letter {entry.id}", ("field", "value"), fields))
    properties = [
        (name, json.dumps(value, ensure_ascii=False)) for name, value in entry.properties.items()
    ]
    out.print(table("properties", ("name", "value"), properties))
    headers = [
        (name, json.dumps(value, ensure_ascii=False)) for name, value in entry.headers.items()
    ]
    out.print(table("headers", ("name", "value"), headers))
    click.echo("body:")
    click.echo(_pretty_body(entry))


def _replayed(entry: DeadLetterDetail) -> str | None:
    if not entry.replay_count:
        return None
    return f"{entry.replay_count} time(s), last {_when(entry.replayed_at)} by {entry.replayed_by}"


def _pretty_body(entry: DeadLetterDetail) -> str:
    if entry.body_text is None:
        return f"(not UTF-8; {len(entry.body)} bytes, base64) {entry.body_base64}"
    try:
        return json.dumps(json.loads(entry.body_text), indent=2, ensure_ascii=False)
    except ValueError:
        return entry.body_text


@dlq.command()
@click.option("--id", "ids", type=click.IntRange(min=1), multiple=True, help="Repeatable.")
@click.option("--reason", help="Every dead message with this reason.")
@click.option("--all", "everything", is_flag=True, help="Every dead message.")
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many messages.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="Messages per second.")
@click.option("--force", is_flag=True, help="Replay messages that were replayed before, again.")
@click.option("--actor", help="Who replays (default: the OS user).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def replay(
    settings: Settings,
    *,
    ids: tuple[int, ...],
    reason: str | None,
    everything: bool,
    dry_run: bool,
    limit: int | None,
    rate: float | None,
    force: bool,
    actor: str | None,
    as_json: bool,
) -> None:
    """Publish stored messages again to their original exchange and routing key."""
    _one_selector(id=ids, reason=reason, all=everything)
    outcomes: list[dict[str, Any]] = []
    with _open(settings) as conn:
        if ids:
            entries = dead_letters.details(conn, Selection(ids=ids, limit=limit))
            found = {entry.id for entry in entries}
            outcomes += [{"id": i, "result": "not_found"} for i in ids if i not in found]
        else:
            states = ["dead", "replayed"] if force else ["dead"]
            entries = dead_letters.details(
                conn, Selection(reason=reason, states=states, limit=limit)
            )
        replayable = []
        for entry in entries:
            refusal = _refusal(entry, force)
            if refusal:
                outcomes.append({"id": entry.id, "result": "refused", "why": refusal})
            else:
                replayable.append(entry)
        if dry_run:
            outcomes += _dry_run(conn, replayable)
        else:
            who = actor or getpass.getuser()
            outcomes += _publish(settings, conn, replayable, actor=who, rate=rate, quiet=as_json)
    outcomes.sort(key=lambda outcome: outcome["id"])
    _report(outcomes, as_json)
    results = {outcome["result"] for outcome in outcomes}
    if results & {"refused", "failed"}:
        sys.exit(ExitCode.FAILURE)
    if "not_found" in results:
        sys.exit(ExitCode.NOT_FOUND)


def _refusal(entry: DeadLetterDetail, force: bool) -> str | None:
    if entry.state == "purged":
        return f"purged {_when(entry.purged_at)} by {entry.purged_by}"
    if entry.state == "replayed" and not force:
        return f"already replayed {_replayed(entry)}; add --force to replay it again"
    return None


def _dry_run(conn: Connection, entries: Sequence[DeadLetterDetail]) -> list[dict[str, Any]]:
    workflow = load_workflow(conn)
    outcomes = []
    for entry in entries:
        check = check_replay(conn, workflow, replay_of(entry))
        outcomes.append(
            {
                "id": entry.id,
                "result": "would_replay",
                "exchange": entry.exchange,
                "routing_key": entry.routing_key,
                "decodes": check.decodes,
                "problem": check.problem,
                "decision": check.decision,
                "explanation": check.explanation,
            }
        )
    return outcomes


def _publish(
    settings: Settings,
    conn: Connection,
    entries: Sequence[DeadLetterDetail],
    *,
    actor: str,
    rate: float | None,
    quiet: bool,
) -> list[dict[str, Any]]:
    """Publish each entry, wait for its confirm, then mark it replayed."""
    if not entries:
        return []
    outcomes = []
    connection = connect_declared(settings, "cli", Topology.for_settings(settings))
    try:
        publisher = ConfirmedPublisher(connection)
        started = time.monotonic()
        for count, entry in enumerate(_progress(entries, quiet)):
            if rate:
                time.sleep(max(0.0, started + count / rate - time.monotonic()))
            outcomes.append(_replay_one(conn, publisher, entry, actor))
    except amqp.exceptions.ChannelError as error:
        done = ", ".join(str(o["id"]) for o in outcomes if o["result"] == "replayed") or "none"
        raise click.ClickException(
            f"the broker refused the replay ({error}); replayed so far: {done}"
        ) from error
    finally:
        connection.release()
    return outcomes


def _replay_one(
    conn: Connection, publisher: ConfirmedPublisher, entry: DeadLetterDetail, actor: str
) -> dict[str, Any]:
    message = replay_of(entry)
    publisher.publish(
        message.body,
        exchange=message.exchange,
        routing_key=message.routing_key,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        headers=message.headers,
        properties=message.properties,
        mandatory=True,
    )
    try:
        publisher.confirm_all()
    except PublishFailed as error:
        return {"id": entry.id, "result": "failed", "why": str(error)}
    if not dead_letters.mark_replayed(conn, entry.id, actor):
        return {"id": entry.id, "result": "replayed", "why": "purged meanwhile; left purged"}
    target = {"exchange": message.exchange, "routing_key": message.routing_key}
    return {"id": entry.id, "result": "replayed", **target}


def _progress(entries: Sequence[DeadLetterDetail], quiet: bool) -> Iterable[DeadLetterDetail]:
    if quiet or len(entries) < PROGRESS_FROM:
        yield from entries
        return
    with Progress(console=Console(stderr=True), transient=True) as progress:
        yield from progress.track(entries, description="replaying")


def _report(outcomes: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json({"results": outcomes})
        return
    for outcome in outcomes:
        click.echo(_describe(outcome))
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome["result"]] = counts.get(outcome["result"], 0) + 1
    summary = ", ".join(f"{result.replace('_', ' ')}: {n}" for result, n in sorted(counts.items()))
    click.echo(summary or "nothing to replay")


def _describe(outcome: dict[str, Any]) -> str:
    entry = f"{outcome['id']}"
    match outcome["result"]:
        case "replayed":
            return f"replayed {entry} to {outcome.get('exchange')} {outcome.get('routing_key')}"
        case "would_replay" if not outcome["decodes"]:
            return f"would replay {entry}: does not decode ({outcome['problem']})"
        case "would_replay":
            return (
                f"would replay {entry}: decodes; {outcome['decision']} ({outcome['explanation']})"
            )
        case "not_found":
            return f"no dead letter {entry}"
        case result:
            return f"{result} {entry}: {outcome.get('why')}"


@dlq.command()
@click.option("--id", "ids", type=click.IntRange(min=1), multiple=True, help="Repeatable.")
@click.option("--reason", help="Every message with this reason.")
@click.option("--older-than", type=Duration(), help="Last failed longer ago than this (7d, 12h).")
@click.option("--yes", is_flag=True, help="Really mark them purged.")
@click.option("--actor", help="Who purges (default: the OS user).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def purge(
    settings: Settings,
    *,
    ids: tuple[int, ...],
    reason: str | None,
    older_than: timedelta | None,
    yes: bool,
    actor: str | None,
    as_json: bool,
) -> None:
    """Mark stored messages purged, with who and when; nothing is deleted."""
    _one_selector(id=ids, reason=reason, older_than=older_than)
    if not yes:
        raise click.UsageError("purging needs --yes")
    selection = Selection(ids=ids or None, reason=reason)
    with _open(settings) as conn:
        purged = dead_letters.purge(conn, selection, actor or getpass.getuser(), older_than)
    missing = [i for i in ids if i not in purged]
    if as_json:
        print_json({"purged": purged, "not_purged": missing})
    else:
        click.echo(f"purged {len(purged)}: {', '.join(map(str, purged)) or '-'}")
        if missing:
            click.echo(f"not found or purged before: {', '.join(map(str, missing))}", err=True)
    if missing:
        sys.exit(ExitCode.NOT_FOUND)


@dlq.command()
@click.option("--reason", help="Only this reason.")
@click.option("--queue", help="Only messages from this queue.")
@click.option("--state", type=click.Choice(STATES), help="Only this state (default: any).")
@click.pass_obj
def export(settings: Settings, *, reason: str | None, queue: str | None, state: str | None) -> None:
    """Write stored messages as JSON lines, every field, the body base64-encoded."""
    selection = Selection(reason=reason, queue=queue, states=[state] if state else None)
    with _open(settings) as conn:
        for entry in dead_letters.each_detail(conn, selection):
            line = entry.model_dump(mode="json", exclude={"body_text"})
            sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
