"""The `order-status` command line: one entry point for operators and scripts."""

from typing import Any

import click
import kombu.exceptions
import pika.exceptions
import psycopg
from pydantic import ValidationError

from worker.cli.bench import bench
from worker.cli.demo import demo
from worker.cli.dlq import dlq
from worker.cli.inspection import commands, orders, statuses
from worker.cli.publishing import publish
from worker.cli.rules import rules
from worker.cli.service import declare, migrate, run
from worker.cli.tasks import tasks
from worker.cli.verify import verify
from worker.config import Settings
from worker.db.migrate import MigrationsMissing
from worker.db.workflow_store import SchemaMissing
from worker.messaging.topology import TopologyMismatch
from worker.rules.loading import RuleFileInvalid


class OrderStatusCli(click.Group):
    """Turns the failures an operator can fix into one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except psycopg.OperationalError as error:
            raise click.ClickException(f"cannot use PostgreSQL: {error}".strip()) from error
        except (
            pika.exceptions.AMQPConnectionError,
            kombu.exceptions.OperationalError,
            ConnectionError,
            TimeoutError,
        ) as error:
            raise click.ClickException(f"cannot reach RabbitMQ: {error!r}") from error
        except (SchemaMissing, MigrationsMissing, TopologyMismatch, RuleFileInvalid) as error:
            raise click.ClickException(str(error)) from error


@click.group(cls=OrderStatusCli, context_settings={"help_option_names": ["-h", "--help"]})
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


for command in (
    migrate,
    declare,
    run,
    publish,
    orders,
    commands,
    statuses,
    demo,
    rules,
    tasks,
    bench,
    dlq,
    verify,
):
    main.add_command(command)
