"""`order-status dlq replay`: publish stored messages again with confirms, or say what would happen.

Each message goes back to its original exchange and routing key, and is marked
replayed only after the broker's confirm: an interrupted replay can be run
again, and at worst sends a message twice, which the inbox turns into a repeat
that changes nothing.
"""

import getpass
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

import amqp.exceptions
import click
from rich.console import Console
from rich.progress import Progress

from worker.cli.dlq_common import one_selector, open_store, replay_summary, when
from worker.cli.output import ExitCode, print_json
from worker.config import Settings
from worker.db import dead_letters
from worker.db.connection import Connection
from worker.db.dead_letters import Selection
from worker.db.workflow_store import load_workflow
from worker.dead_letter_views import DeadLetterDetail
from worker.messaging.broker import connect_declared
from worker.messaging.publisher import ConfirmedPublisher, PublishFailed
from worker.messaging.replay import replay_of
from worker.messaging.topology import Topology
from worker.replay_check import check_replay

PROGRESS_FROM = 20
"""Replays of at least this many messages show a progress bar."""


@click.command()
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
    one_selector(id=ids, reason=reason, all=everything)
    outcomes: list[dict[str, Any]] = []
    with open_store(settings) as conn:
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
        return f"purged {when(entry.purged_at)} by {entry.purged_by}"
    if entry.state == "replayed" and not force:
        return f"already replayed {replay_summary(entry)}; add --force to replay it again"
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
