"""`order-status bench`: throughput, latency, memory and CPU of real runs, then their check."""

import sys
from typing import Any

import click
from rich.console import Group

from worker.bench.rounds import DEFAULT_REFERENCE_BATCH, Rounds, RoundsOptions, run_rounds
from worker.bench.run import BenchOptions
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
@click.option(
    "--reference/--no-reference",
    default=True,
    help="Also run the reference pipeline (our topology and guarantees, trivial processing), "
    "without and with the database, and report our ratio to each.",
)
@click.option(
    "--reference-batch",
    type=click.IntRange(min=1),
    default=DEFAULT_REFERENCE_BATCH,
    show_default=True,
    help="The reference's batch size.",
)
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Rounds of alternated runs (ours, reference, reference with database); "
    "figures are the medians.",
)
@click.option("--ceiling/--no-ceiling", default=True, help="Also measure the raw ceilings.")
@click.option(
    "--keep", is_flag=True, help="Keep the runs' databases, queues and worker logs for inspection."
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
    reference: bool,
    reference_batch: int,
    repeat: int,
    ceiling: bool,
    keep: bool,
    as_json: bool,
) -> None:
    """Run the workers against a generated load in a database and namespace of their own.

    Registers ORDERS orders, publishes COMMANDS status changes from a separate
    process with pipelined confirms, and reports commands per second end to end,
    publish-to-event latency, each worker's peak memory, and CPU per command of
    every process including RabbitMQ and PostgreSQL. Unless --no-reference, each
    round also runs the reference pipeline (our topology, durability and
    ack-after-confirm, trivial processing) without and with the database, with
    the same load generator and observer, and reports our ratio to each; unless
    --no-ceiling, also the single-hop ceilings. Then it checks its own runs and
    exits 1 if anything was lost or doubled.
    """
    options = BenchOptions(orders, commands, duplicates, invalid, rate, ceiling, keep)
    rounds_options = RoundsOptions(repeat, reference, reference_batch)

    def progress(message: str) -> None:
        if not as_json:
            click.echo(message, err=True)

    result = run_rounds(settings, options, rounds_options, progress)
    if as_json:
        print_json(result.as_json())
    else:
        console().print(_tables(result))
    sys.exit(ExitCode.OK if result.passed else ExitCode.FAILURE)


def _tables(result: Rounds) -> Group:
    figures = result.as_json()
    runs = figures["runs"]
    per_run = len(runs) > 1

    def row(label: str, median: Any, values: list[Any]) -> tuple[str, str]:
        shown = str(median)
        if per_run:
            shown += " (" + ", ".join(str(value) for value in values) + ")"
        return label, shown

    ours = [run["ours"] for run in runs]
    latency = figures["latency_ms"]
    rows = [
        ("commands (messages incl. repeats)", f"{figures['commands']} ({figures['messages']})"),
        row("commands per second, end to end", figures["commands_per_second"],
            [r["commands_per_second"] for r in ours]),
        ("latency p50 / p95 / p99 / max (ms)", " / ".join(str(v) for v in latency.values())),
        *(row(f"peak RSS {name} (MB)", mb, [r["peak_rss_mb"][name] for r in ours])
          for name, mb in figures["peak_rss_mb"].items()),
        ("worker CPU seconds per 1,000 commands", figures["cpu_seconds_per_1000_commands"]),
        *(row(f"CPU µs per command: {name}", us, [r["cpu_us_per_command"].get(name) for r in ours])
          for name, us in figures["cpu_us_per_command"].items()),
    ]  # fmt: skip
    if figures["reference"]:
        for name, label in (("without_database", "reference"),
                            ("with_database", "reference with database")):  # fmt: skip
            rows += [
                row(f"{label}: commands per second",
                    figures["reference"][name]["commands_per_second"],
                    [run[name]["commands_per_second"] for run in runs]),
                (f"{label}: latency p50 / p99 (ms)",
                 " / ".join(str(v) for v in figures["reference"][name]["latency_ms"].values())),
                row(f"{label}: CPU µs per command, total",
                    figures["reference"][name]["cpu_us_per_command"]["total"],
                    [run[name]["cpu_us_per_command"]["total"] for run in runs]),
            ]  # fmt: skip
    if figures["ratio_to_broker_limit"] is not None:
        rows += [
            row("ratio to the broker-bound limit (reference)", figures["ratio_to_broker_limit"],
                [run["ratio_to_broker_limit"] for run in runs]),
            row("ratio to the reference with database", figures["ratio_to_reference_with_db"],
                [run["ratio_to_reference_with_db"] for run in runs]),
        ]  # fmt: skip
    if figures["ceiling"]:
        rows += [
            ("ceiling: broker publish /s", figures["ceiling"]["broker_publish"]),
            ("ceiling: broker consume /s", figures["ceiling"]["broker_consume"]),
            ("ceiling: database set-based apply /s", figures["ceiling"]["database_apply"]),
            ("ratio to the binding ceiling", figures["ratio_to_ceiling"]),
        ]
    verdict = "passed" if result.passed else "FAILED"
    checks = [(problem,) for problem in figures["check"]["problems"]] or [("every check held",)]
    title = "benchmark" + (
        f": medians of {len(runs)} alternated rounds (each run)" if per_run else ""
    )
    return Group(
        table(title, ["figure", "value"], rows),
        table(f"check: {verdict}", ["finding"], checks),
    )
