"""`order-status teardown`: remove a namespace's queues and exchanges, and its database."""

import click

from worker.cli.output import print_json
from worker.config import Settings
from worker.db.errors import translated
from worker.db.migrate import drop_database
from worker.durations import DEFAULT_RETRY_DELAYS, parse_delays
from worker.messaging.teardown import delete_topology
from worker.messaging.topology import Topology


@click.command()
@click.option("--yes", is_flag=True, help="Really delete; nothing is removed without it.")
@click.option("--database", is_flag=True, help="Also drop the database ORDERS_DATABASE_URL names.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def teardown(settings: Settings, *, yes: bool, database: bool, as_json: bool) -> None:
    """Delete the namespace's queues (with the messages in them) and exchanges.

    The retry tiers of ORDERS_RETRY_DELAYS and of the default delays are removed
    too. With --database, drop the database as well, ending its sessions: stop
    the workers first.
    """
    if not yes:
        raise click.UsageError(
            f"teardown deletes the queues and exchanges of namespace {settings.namespace!r}"
            + (" and its database" if database else "")
            + "; add --yes"
        )
    configured = Topology.for_settings(settings)
    default_tiers = Topology(
        settings.namespace, settings.delivery_limit, parse_delays(DEFAULT_RETRY_DELAYS)
    )
    queues, exchanges = delete_topology(settings.amqp_url, [configured, default_tiers])
    dropped = False
    if database:
        with translated():
            dropped = drop_database(settings.database_url)
    if as_json:
        print_json(
            {
                "namespace": settings.namespace,
                "queues": queues,
                "exchanges": exchanges,
                "database_dropped": dropped,
            }
        )
        return
    click.echo(f"deleted {len(queues)} queues: " + (", ".join(queues) or "none"))
    click.echo(f"deleted {len(exchanges)} exchanges: " + (", ".join(exchanges) or "none"))
    if database:
        click.echo("dropped the database" if dropped else "there was no database to drop")
