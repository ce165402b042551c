"""`order-status dlq replay`: publish stored messages again with confirms, or say what would happen.

Each message goes back to the queue it failed in, alone (see
`worker.messaging.replay`). Its row is locked while it is published, confirmed
and marked replayed, so two replays, or a replay and a purge, never both act on
it. A replay interrupted before the mark can be run again, and at worst sends a
message twice, which the inbox turns into a repeat that changes nothing.
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
from worker.cli.output import ExitCode, print_json, visible
from worker.config import Settings
from worker.crashpoints import REPLAY_AFTER_PUBLISH_BEFORE_MARK, crash_point
from worker.db import dead_letters
from worker.db.connection import Connection
from worker.db.dead_letters import Selection
from worker.db.workflow_store import load_workflow
from worker.dead_letter_views import DeadLetterDetail
from worker.messaging.broker import connect_declared
from worker.messaging.publisher import ConfirmedPublisher, ConfirmTimeout, PublishFailed
from worker.messaging.replay import Replay, replay_of, replay_queues
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
    """Publish stored messages again to the queue they failed in, with their routing key."""
    one_selector(id=ids, reason=reason, all=everything)
    topology = Topology.for_settings(settings)
    outcomes: list[dict[str, Any]] = []
    with open_store(settings) as conn:
        # Only ids are read up front; each entry's body is read when its turn comes.
        if ids:
            selected = dead_letters.ids(conn, Selection(ids=ids, limit=limit))
            outcomes += [{"id": i, "result": "not_found"} for i in ids if i not in selected]
        else:
            states = ["dead", "replayed"] if force else ["dead"]
            selected = dead_letters.ids(conn, Selection(reason=reason, states=states, limit=limit))
        if dry_run:
            outcomes += _dry_run(conn, topology, selected, force)
        else:
            who = actor or getpass.getuser()
            outcomes += _publish(
                settings, conn, selected, actor=who, force=force, rate=rate, quiet=as_json
            )
    outcomes.sort(key=lambda outcome: outcome["id"])
    _report(outcomes, as_json)
    results = {outcome["result"] for outcome in outcomes}
    if results & {"refused", "failed", "unconfirmed", "skipped"}:
        sys.exit(ExitCode.FAILURE)
    if "not_found" in results:
        sys.exit(ExitCode.NOT_FOUND)


def _refusal(entry: DeadLetterDetail, topology: Topology, force: bool) -> str | None:
    if entry.state == "purged":
        return f"purged {when(entry.purged_at)} by {entry.purged_by}"
    if entry.state == "replayed" and not force:
        return f"already replayed {replay_summary(entry)}; add --force to replay it again"
    if entry.source_queue not in replay_queues(topology):
        return f"source queue {entry.source_queue!r} is not a queue of this service"
    return None


def _target(message: Replay) -> dict[str, Any]:
    return {"queue": message.queue, "routing_key": message.routing_key}


def _dry_run(
    conn: Connection, topology: Topology, selected: Sequence[int], force: bool
) -> list[dict[str, Any]]:
    workflow = load_workflow(conn)
    outcomes = []
    for entry_id in selected:
        entry = dead_letters.get(conn, entry_id)
        if entry is None:
            continue
        refusal = _refusal(entry, topology, force)
        if refusal:
            outcomes.append({"id": entry.id, "result": "refused", "why": refusal})
            continue
        message = replay_of(entry, topology)
        check = check_replay(conn, workflow, message, topology)
        outcomes.append(
            {
                "id": entry.id,
                "result": "would_replay",
                **_target(message),
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
    selected: Sequence[int],
    *,
    actor: str,
    force: bool,
    rate: float | None,
    quiet: bool,
) -> list[dict[str, Any]]:
    """Claim each entry, publish it, wait for its confirm, mark it replayed, then let go."""
    if not selected:
        return []
    topology = Topology.for_settings(settings)
    outcomes: list[dict[str, Any]] = []
    connection = connect_declared(settings, "cli", topology)
    try:
        publisher = ConfirmedPublisher(connection)
        started = time.monotonic()
        for count, entry_id in enumerate(_progress(selected, quiet)):
            if rate:
                time.sleep(max(0.0, started + count / rate - time.monotonic()))
            outcome = _replay_one(conn, publisher, topology, entry_id, actor, force)
            if outcome["result"] == "unconfirmed":
                # The old channel may still answer for that message: start afresh.
                publisher = ConfirmedPublisher(connection)
            outcomes.append(outcome)
    except amqp.exceptions.ChannelError as error:
        done = ", ".join(str(o["id"]) for o in outcomes if o["result"] == "replayed") or "none"
        raise click.ClickException(
            f"the broker refused the replay ({error}); replayed so far: {done}"
        ) from error
    finally:
        connection.release()
    return outcomes


def _replay_one(
    conn: Connection,
    publisher: ConfirmedPublisher,
    topology: Topology,
    entry_id: int,
    actor: str,
    force: bool,
) -> dict[str, Any]:
    """Replay one entry while holding its row lock, so no other replay or purge races it."""
    try:
        with dead_letters.claimed(conn, entry_id) as entry:
            if entry is None:
                why = "another replay or a purge holds it right now; run again to see its state"
                return {"id": entry_id, "result": "skipped", "why": why}
            refusal = _refusal(entry, topology, force)
            if refusal:
                return {"id": entry_id, "result": "refused", "why": refusal}
            message = replay_of(entry, topology)
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
            publisher.confirm_all()
            crash_point(REPLAY_AFTER_PUBLISH_BEFORE_MARK)
            dead_letters.mark_replayed(conn, entry_id, actor)
            return {"id": entry_id, "result": "replayed", **_target(message)}
    except ConfirmTimeout as error:
        why = f"{error}; it may have been published; running the replay again is safe"
        return {"id": entry_id, "result": "unconfirmed", "why": why}
    except PublishFailed as error:
        return {"id": entry_id, "result": "failed", "why": str(error)}


def _progress(selected: Sequence[int], quiet: bool) -> Iterable[int]:
    if quiet or len(selected) < PROGRESS_FROM:
        yield from selected
        return
    with Progress(console=Console(stderr=True), transient=True) as progress:
        yield from progress.track(selected, description="replaying")


def _report(outcomes: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json({"results": outcomes})
        return
    for outcome in outcomes:
        click.echo(visible(_describe(outcome)))
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome["result"]] = counts.get(outcome["result"], 0) + 1
    summary = ", ".join(f"{result.replace('_', ' ')}: {n}" for result, n in sorted(counts.items()))
    click.echo(summary or "nothing to replay")


def _describe(outcome: dict[str, Any]) -> str:
    entry = f"{outcome['id']}"
    match outcome["result"]:
        case "replayed":
            return f"replayed {entry} to {outcome.get('queue')} ({outcome.get('routing_key')})"
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
