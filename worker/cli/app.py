"""The `order-status` command line: one entry point for operators and scripts."""

import socket
import ssl
from typing import Any

import amqp.exceptions
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
from worker.config import Settings
from worker.db.errors import translate as translate_database_error
from worker.db.migrate import MigrationsMissing
from worker.db.workflow_store import SchemaMissing
from worker.errors import OrderStatusError, Unavailable
from worker.messaging.errors import translate as translate_broker_error
from worker.messaging.topology import TopologyMismatch
from worker.redaction import redact, secrets_in
from worker.rules.loading import RuleFileInvalid


class OrderStatusCli(click.Group):
    """Turns the failures an operator can fix into one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return self._invoke_explained(ctx)
        except click.ClickException as error:
            # Driver messages may quote a connection string: mask its password.
            settings = ctx.obj if isinstance(ctx.obj, Settings) else None
            secrets = secrets_in(settings.database_url, settings.amqp_url) if settings else ()
            redacted = redact(error.message, secrets)
            if redacted == error.message:
                raise
            raise click.ClickException(redacted) from None

    def _invoke_explained(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except psycopg.Error as error:
            explained = _reason(translate_database_error(error))
            raise click.ClickException(f"cannot use PostgreSQL: {explained}") from error
        except (
            amqp.exceptions.AMQPError,
            kombu.exceptions.KombuError,
            pika.exceptions.AMQPError,
            ssl.SSLError,
            socket.gaierror,
        ) as error:
            explained = _reason(translate_broker_error(error))
            raise click.ClickException(f"cannot reach RabbitMQ: {explained}") from error
        except (ConnectionError, TimeoutError) as error:
            raise click.ClickException(f"cannot reach RabbitMQ: {error!r}") from error
        except (SchemaMissing, MigrationsMissing, TopologyMismatch, RuleFileInvalid) as error:
            raise click.ClickException(str(error)) from error
        except OrderStatusError as error:
            raise click.ClickException(str(error)) from error


def _reason(error: OrderStatusError) -> str:
    """What went wrong, in one line, without repeating which server it was."""
    return error.detail if isinstance(error, Unavailable) else str(error)


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
):
    main.add_command(command)
