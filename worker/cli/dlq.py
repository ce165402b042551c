"""`order-status dlq`: inspect, group, replay and purge the dead-letter store.

A thin shell over `worker.services.dead_letters`: parse the options, call the
service, print. Browsing reads PostgreSQL only, never a queue. Purging marks
entries with who and when; nothing is deleted. Replaying is in `dlq_replay.py`.
"""

import getpass
import json
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta

import click
from rich.table import Table
from rich.text import Text

from worker.cli.dlq_common import STATES, Duration, Moment, one_selector, open_store
from worker.cli.dlq_replay import replay
from worker.cli.output import ExitCode, console, json_text, print_json, table, visible
from worker.config import Settings
from worker.dead_letter_views import DeadLetterDetail
from worker.services import dead_letters as service
from worker.services.dead_letters import DeadLetterFilter, PurgeRequest, when

SHOWN_BODY_CHARACTERS = 4000
"""`dlq show` prints this much of a body unless `--full`."""
SHOWN_DETAIL_CHARACTERS = 80
"""`dlq list` shortens the error detail to at most this, less to fit; `--json` keeps all of it."""


@click.group()
def dlq() -> None:
    """Inspect, group, replay and purge dead-lettered messages."""


@dlq.command()
@click.option("--all", "everything", is_flag=True, help="Also groups with nothing left dead.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def stats(settings: Settings, *, everything: bool, as_json: bool) -> None:
    """Count stored messages by reason and source queue: the failure groups."""
    with open_store(settings) as (store, _):
        found = service.dead_letter_groups(store, everything=everything)
    if as_json:
        print_json(found)
        return
    rows = [
        (g.reason, g.source_queue, g.dead, g.replayed, g.purged, when(g.oldest), when(g.newest))
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
@click.option("--json", "as_json", is_flag=True, help="Every field, the detail in full.")
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
    query = DeadLetterFilter.model_validate(
        {
            "reason": reason,
            "queue": queue,
            "order_number": order_number,
            "since": since,
            "until": until,
            "state": state,
            "limit": limit,
        }
    )
    with open_store(settings) as (store, _):
        found = service.list_dead_letters(store, query)
    if as_json:
        print_json(found)
        return
    rows = [
        (
            e.id,
            e.state,
            e.reason,
            shortened(e.detail, SHOWN_DETAIL_CHARACTERS),
            e.source_queue,
            e.order_number,
            e.message_id,
            e.attempts,
            when(e.last_failed_at),
        )
        for e in found
    ]
    console().print(_listing(f"{len(found)} dead letters", rows))


LIST_COLUMNS = (
    "id", "state", "reason", "detail", "queue", "order", "message id", "tries", "last failed"
)  # fmt: skip
"""The routing key is left to `show`: the queue and reason say more, and the detail needs room."""


def _listing(title: str, rows: Sequence[Sequence[object]]) -> Table:
    """One line per entry: the detail, the widest column, gives way first, cut with an ellipsis.

    Rich narrows the widest columns first when the table does not fit; the
    detail's cells never wrap, so each entry keeps one line.
    """
    listing = Table(title=Text(visible(title)), title_justify="left")
    for column in LIST_COLUMNS:
        listing.add_column(Text(column))
    detail = LIST_COLUMNS.index("detail")
    for row in rows:
        cells = [Text("-" if cell is None else visible(str(cell))) for cell in row]
        cells[detail].no_wrap, cells[detail].overflow = True, "ellipsis"
        listing.add_row(*cells)
    return listing


@dlq.command()
@click.argument("entry_id", metavar="ID", type=click.IntRange(min=1))
@click.option("--full", is_flag=True, help=f"The whole body, even over {SHOWN_BODY_CHARACTERS:,}.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def show(settings: Settings, *, entry_id: int, full: bool, as_json: bool) -> None:
    """Show a stored message: reason, detail, headers and the pretty-printed body."""
    with open_store(settings) as (store, _):
        entry = service.show_dead_letter(store, entry_id)
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
        ("first failed", when(entry.first_failed_at)),
        ("last failed", when(entry.last_failed_at)),
        ("replayed from", _replayed_from(entry)),
        ("replayed", service.replay_summary(entry)),
        ("purged", _purged(entry)),
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
    body = _pretty_body(entry)
    click.echo("body:")
    if full or len(body) <= SHOWN_BODY_CHARACTERS:
        click.echo(visible(body, keep="\n\t"))
        return
    click.echo(visible(body[:SHOWN_BODY_CHARACTERS], keep="\n\t"))
    more = len(body) - SHOWN_BODY_CHARACTERS
    click.echo(f"... {more:,} more characters; --full shows the whole body")


def _purged(entry: DeadLetterDetail) -> str | None:
    if entry.purged_at is None:
        return None
    note = f": {entry.purge_note}" if entry.purge_note else ""
    return f"{when(entry.purged_at)} by {entry.purged_by}{note}"


def _replayed_from(entry: DeadLetterDetail) -> str | None:
    if entry.replayed_from is None:
        return None
    return f"{entry.replayed_from} (this message failed again after that entry was replayed)"


def _pretty_body(entry: DeadLetterDetail) -> str:
    if entry.body_text is None:
        return f"(not UTF-8; {len(entry.body)} bytes, base64) {entry.body_base64}"
    try:
        return json.dumps(json.loads(entry.body_text), indent=2, ensure_ascii=False)
    except ValueError:
        return entry.body_text


def shortened(text: str | None, width: int) -> str | None:
    """`text` on one line, cut to `width` characters with an ellipsis when longer."""
    if text is None:
        return None
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


@dlq.command()
@click.option("--id", "ids", type=click.IntRange(min=1), multiple=True, help="Repeatable.")
@click.option("--reason", help="Every message with this reason.")
@click.option("--older-than", type=Duration(), help="Last failed longer ago than this (7d, 12h).")
@click.option("--yes", is_flag=True, help="Really mark them purged.")
@click.option("--actor", help="Who purges (default: the OS user).")
@click.option("--note", help="Why, kept with each entry (e.g. 'test data', 'fixed upstream').")
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
    note: str | None,
    as_json: bool,
) -> None:
    """Mark stored messages purged, with who, when and why; nothing is deleted."""
    one_selector(id=ids, reason=reason, older_than=older_than)
    if not yes:
        raise click.UsageError("purging needs --yes")
    request = PurgeRequest(
        ids=ids, reason=reason, older_than=older_than, actor=actor or getpass.getuser(), note=note
    )
    with open_store(settings) as (store, _):
        result = service.purge_dead_letters(store, request)
    if as_json:
        print_json(result)
    else:
        click.echo(f"purged {len(result.purged)}: {', '.join(map(str, result.purged)) or '-'}")
        if result.not_purged:
            missing = ", ".join(map(str, result.not_purged))
            click.echo(f"not found or purged before: {missing}", err=True)
    if result.not_purged:
        sys.exit(ExitCode.NOT_FOUND)


@dlq.command()
@click.option("--reason", help="Only this reason.")
@click.option("--queue", help="Only messages from this queue.")
@click.option("--state", type=click.Choice(STATES), help="Only this state (default: any).")
@click.pass_obj
def export(settings: Settings, *, reason: str | None, queue: str | None, state: str | None) -> None:
    """Write stored messages as JSON lines, every field, the body base64-encoded."""
    query = DeadLetterFilter.model_validate({"reason": reason, "queue": queue, "state": state})
    with open_store(settings) as (store, _):
        for entry in service.export_dead_letters(store, query):
            line = entry.model_dump(mode="json", exclude={"body_text"})
            sys.stdout.write(json_text(line) + "\n")


dlq.add_command(replay)
