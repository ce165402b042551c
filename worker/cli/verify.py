"""`order-status verify`: check a live database's invariants after an incident or a restore."""

import sys
from datetime import timedelta

import click

from worker.cli.output import ExitCode, print_json, visible
from worker.config import Settings
from worker.db.connection import connect
from worker.db.verify import read_suspects
from worker.verification import Verdict, judge

DEFAULT_MAX_OUTBOX_AGE_SECONDS = 60.0


@click.command()
@click.option(
    "--max-outbox-age",
    type=click.FloatRange(min=0),
    default=DEFAULT_MAX_OUTBOX_AGE_SECONDS,
    show_default=True,
    help="Seconds an event may wait in the outbox unpublished before it counts as stuck.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@click.pass_obj
def verify(settings: Settings, max_outbox_age: float, as_json: bool) -> None:
    """Check history, outbox and inbox agree; list each violation; exit 1 if there is one.

    History versions gapless per order and ending at the order's status; one
    outbox event per history row; no event unpublished for longer than
    --max-outbox-age; every inbox outcome consistent with the history.
    """
    age = timedelta(seconds=max_outbox_age)
    connection = connect(settings, "verify")
    try:
        verdict = judge(read_suspects(connection, age), age)
    finally:
        connection.close()
    _report(verdict, as_json)
    sys.exit(ExitCode.OK if verdict.passed else ExitCode.FAILURE)


def _report(verdict: Verdict, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "passed": verdict.passed,
                "counts": verdict.counts(),
                "violations": [violation.as_data() for violation in verdict.violations],
            }
        )
        return
    for violation in verdict.violations:
        ids = " ".join(f"{name}={value}" for name, value in violation.ids.items())
        click.echo(visible(f"{violation.check.value}: {ids}: {violation.detail}"))
    counts = ", ".join(f"{check}: {count}" for check, count in verdict.counts().items())
    click.echo(("passed" if verdict.passed else "FAILED") + f" ({counts})")
