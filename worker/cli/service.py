"""Commands that set up and run the service: migrate, declare, run."""

import json
import signal
import sys
import threading
from types import FrameType

import click

from worker.config import Settings
from worker.db.migrate import migrate as apply_migrations
from worker.logs import configure_logging
from worker.messaging.broker import connect_declared
from worker.messaging.definitions import definitions, vhost_of
from worker.messaging.topology import Topology
from worker.redaction import secrets_in
from worker.runner import WORKERS, run_workers


@click.command()
@click.pass_obj
def migrate(settings: Settings) -> None:
    """Create the database if needed and apply pending migrations."""
    applied = apply_migrations(settings.database_url, settings.migrations_dir)
    if applied:
        click.echo("applied: " + ", ".join(applied))
    else:
        click.echo("the database is up to date")


@click.command()
@click.option(
    "--print-definitions",
    is_flag=True,
    help="Print the broker users and permissions of each role as RabbitMQ definitions JSON, "
    "and declare nothing.",
)
@click.pass_obj
def declare(settings: Settings, print_definitions: bool) -> None:
    """Declare the exchanges, queues and bindings (idempotent)."""
    topology = Topology.for_settings(settings)
    if print_definitions:
        document = definitions(topology, vhost_of(settings.amqp_url))
        click.echo(json.dumps(document, indent=2))
        return
    connect_declared(settings, "cli", topology).release()
    click.echo(
        "declared exchanges "
        + ", ".join(exchange.name for exchange in topology.exchanges())
        + "; queues "
        + ", ".join(queue.name for queue in topology.queues())
    )


@click.command()
@click.argument(
    "workers", type=click.Choice([*WORKERS, "all"]), default="all", metavar="[WORKER|all]"
)
@click.pass_obj
def run(settings: Settings, workers: str) -> None:
    """Run a worker (status-worker, relay, rules, dead-letter-ingester) or all, until a signal."""
    configure_logging(
        settings.log_level,
        settings.log_format,
        secrets_in(settings.database_url, settings.amqp_url),
    )
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        click.echo(f"received {signal.Signals(signum).name}; stopping", err=True)
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    names = list(WORKERS) if workers == "all" else [workers]
    sys.exit(0 if run_workers(settings, names, stop) else 1)
