"""`order-status bench`: throughput, latency, memory and CPU of a real run, then its check."""

import sys

import click
from rich.console import Group

from worker.bench.run import BenchOptions, BenchResult, run_bench
from worker.cli.output import ExitCode, console, print_json, table
from worker.config import Settings


@click.command()
@click.option("--orders", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--commands", type=click.IntRange(min=1), default=20_000, show_default=True)
@click.option(
    "--duplicates",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Fraction of the commands also sent a second time.",
)
@click.option(
    "--invalid",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Fraction of the commands asking for a transition the workflow refuses.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Offered load in commands per second (default: as fast as the broker takes them).",
)
@click.option("--ceiling/--no-ceiling", default=True, help="Also measure the raw ceilings.")
@click.option(
    "--keep", is_flag=True, help="Keep the run's database, queues and worker logs for inspection."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def bench(
    settings: Settings,
    orders: int,
    commands: int,
    duplicates: float,
    invalid: float,
    rate: float | None,
    ceiling: bool,
    keep: bool,
    as_json: bool,
) -> None:
    """Run the workers against a generated load in a database and namespace of their own.

    Registers ORDERS orders, publishes COMMANDS status changes from a separate
    process with pipelined confirms, and reports commands per second end to end,
    publish-to-event latency, each worker's peak memory and CPU, and (unless
    --no-ceiling) the ratio to what the broker and database alone sustain here.
    Then it checks its own run and exits 1 if anything was lost or doubled.
    """
    options = BenchOptions(orders, commands, duplicates, invalid, rate, ceiling, keep)

    def progress(message: str) -> None:
        if not as_json:
            click.echo(message, err=True)

    result = run_bench(settings, options, progress)
    if as_json:
        print_json(result.as_json())
    else:
        console().print(_tables(result))
    sys.exit(ExitCode.OK if result.passed else ExitCode.FAILURE)


def _tables(result: BenchResult) -> Group:
    figures = result.as_json()
    latency = figures["latency_ms"]
    rows = [
        ("commands (messages incl. repeats)", f"{result.distinct_commands} ({result.messages})"),
        ("seconds, first publish to last event", figures["seconds"]),
        ("commands per second, end to end", figures["commands_per_second"]),
        ("latency p50 / p95 / p99 / max (ms)", " / ".join(str(v) for v in latency.values())),
        *((f"peak RSS {name} (MB)", mb) for name, mb in figures["peak_rss_mb"].items()),
        ("worker CPU seconds per 1,000 commands", figures["cpu_seconds_per_1000_commands"]),
    ]
    if result.ceiling:
        rows += [
            ("ceiling: broker publish /s", figures["ceiling"]["broker_publish"]),
            ("ceiling: broker consume /s", figures["ceiling"]["broker_consume"]),
            ("ceiling: database set-based apply /s", figures["ceiling"]["database_apply"]),
            ("ratio to the binding ceiling", figures["ratio_to_ceiling"]),
        ]
    verdict = "passed" if result.passed else "FAILED"
    checks = [(problem,) for problem in result.verdict.problems] or [("every check held",)]
    if result.nacked:
        checks.append((f"the broker refused {result.nacked} commands",))
    return Group(
        table("benchmark", ["figure", "value"], rows),
        table(f"check: {verdict}", ["finding"], checks),
    )
