"""The `order-status` command line: one entry point for operators and scripts."""

import click
from pydantic import ValidationError

from worker.cli.demo import demo
from worker.cli.inspection import commands, orders, statuses
from worker.cli.publishing import publish
from worker.cli.service import declare, migrate, run
from worker.config import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="order-status")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Order-status engine for CRM systems.

    Configuration comes from the environment: ORDERS_DATABASE_URL,
    ORDERS_AMQP_URL, ORDERS_NAMESPACE (see the README for the rest).
    """
    try:
        ctx.obj = Settings()
    except ValidationError as error:
        raise click.UsageError(f"invalid configuration in the environment:\n{error}") from error


for command in (migrate, declare, run, publish, orders, commands, statuses, demo):
    main.add_command(command)
