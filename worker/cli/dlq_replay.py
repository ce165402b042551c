"""`order-status dlq replay`: a thin shell over `worker.services.dead_letter_replay`."""

import getpass
import sys
from functools import partial
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress, TaskID

from worker.cli.dlq_common import one_selector, open_store
from worker.cli.output import ExitCode, print_json, visible
from worker.config import Settings
from worker.messaging.replay import replay_publisher
from worker.messaging.topology import Topology
from worker.services.dead_letter_replay import (
    FAILED_RESULTS,
    ReplayOutcome,
    ReplayParts,
    ReplayReport,
    ReplayRequest,
    replay_dead_letters,
)

PROGRESS_FROM = 20
"""Replays of at least this many messages show a progress bar."""


@click.command()
@click.option("--id", "ids", type=click.IntRange(min=1), multiple=True, help="Repeatable.")
@click.option("--reason", help="Every dead message with this reason.")
@click.option("--all", "everything", is_flag=True, help="Every dead message.")
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many messages.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="Messages per second.")
@click.option(
    "--force",
    is_flag=True,
    help="Also replay messages replayed before, and those the dry run says would fail again.",
)
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
    """Publish stored messages again to the queue they failed in, with their routing key.

    Each is first checked as its consumer would take it now: one that would
    fail again (it does not decode, or its command id was used for other
    content) is refused unless --force.
    """
    one_selector(id=ids, reason=reason, all=everything)
    request = ReplayRequest(
        ids=ids,
        reason=reason,
        all_dead=everything,
        limit=limit,
        rate=rate,
        force=force,
        dry_run=dry_run,
        actor=actor or getpass.getuser(),
    )
    topology = Topology.for_settings(settings)
    bar = _ProgressBar(quiet=as_json)
    try:
        with open_store(settings) as (store, reads):
            publishing = partial(replay_publisher, settings, topology)
            parts = ReplayParts(store=store, reads=reads, topology=topology, publishing=publishing)
            report = replay_dead_letters(parts, request, progress=bar)
    finally:
        bar.close()
    _print(report, as_json)
    results = set(report.counts())
    if report.stopped or results & FAILED_RESULTS:
        sys.exit(ExitCode.FAILURE)
    if "not_found" in results:
        sys.exit(ExitCode.NOT_FOUND)


class _ProgressBar:
    """A progress bar on stderr for replays of many messages, started on the first report."""

    def __init__(self, *, quiet: bool) -> None:
        self._quiet = quiet
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __call__(self, done: int, total: int) -> None:
        if self._quiet or total < PROGRESS_FROM:
            return
        if self._progress is None:
            self._progress = Progress(console=Console(stderr=True), transient=True)
            self._progress.start()
            self._task = self._progress.add_task("replaying", total=total)
        if self._task is not None:
            self._progress.update(self._task, completed=done)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def _print(report: ReplayReport, as_json: bool) -> None:
    if as_json:
        body: dict[str, Any] = {"results": [_as_json(o) for o in report.outcomes]}
        if report.stopped:
            body["stopped"] = report.stopped
        print_json(body)
        return
    for outcome in report.outcomes:
        click.echo(visible(_describe(outcome)))
    counts = report.counts()
    summary = ", ".join(f"{result.replace('_', ' ')}: {n}" for result, n in sorted(counts.items()))
    click.echo(summary or "nothing to replay")
    if report.stopped:
        click.echo(f"Error: {visible(report.stopped)}", err=True)


def _as_json(outcome: ReplayOutcome) -> dict[str, Any]:
    """One outcome, flat: where it went and what its consumer would make of it."""
    flat = outcome.model_dump(mode="json", exclude={"check"}, exclude_defaults=True)
    if outcome.check is not None:
        flat |= outcome.check.model_dump(mode="json")
    return flat


def _describe(outcome: ReplayOutcome) -> str:
    entry, check = outcome.id, outcome.check
    match outcome.result:
        case "replayed":
            return _replayed(outcome)
        case "would_replay" if check is not None:
            doomed = "; it would fail again (--force)" if check.fails_again else ""
            return f"would replay {entry}: {check.summary()}{doomed}"
        case "refused" if outcome.needs_force:
            return f"refused {entry}: {outcome.why}; add --force to replay it anyway"
        case "not_found":
            return f"no dead letter {entry}"
        case result:
            return f"{result} {entry}: {outcome.why}"


def _replayed(outcome: ReplayOutcome) -> str:
    line = f"replayed {outcome.id} to {outcome.queue} ({outcome.routing_key})"
    check = outcome.check
    if check is not None and check.fails_again:
        return f"{line}; warning: it will fail again: {check.summary()}"
    if check is not None and check.rejected:
        return f"{line}; its consumer will record it as rejected: {check.explanation}"
    return line
