"""The `order-status` command line: one entry point for operators and scripts."""

from typing import Any

import click
from pydantic import ValidationError

from worker.cli.bench import bench
from worker.cli.demo import demo
from worker.cli.dlq import dlq
from worker.cli.errors import cli_error, settings_error
from worker.cli.inspection import commands, orders, statuses
from worker.cli.publishing import publish
from worker.cli.rules import rules
from worker.cli.service import declare, migrate, run
from worker.cli.tasks import tasks
from worker.cli.teardown import teardown
from worker.cli.verify import verify
from worker.config import Settings
from worker.redaction import secrets_in

JSON_FLAG = "--json"


class OrderStatusCli(click.Group):
    """Turns the failures an operator can fix into one clear line instead of a traceback.

    See `worker.cli.errors`: the exit code follows the project's error type, and
    with `--json` on the command line the error is a JSON object on stdout.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["as_json"] = JSON_FLAG in args
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort):
            raise
        except Exception as error:
            shown = cli_error(error, as_json=bool(ctx.meta.get("as_json")))
            if shown is None:
                raise
            # Driver messages may quote a connection string: mask its password.
            settings = ctx.obj if isinstance(ctx.obj, Settings) else None
            secrets = secrets_in(settings.database_url, settings.amqp_url) if settings else ()
            shown.secrets = secrets
            raise shown from error


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
        raise settings_error(error, as_json=bool(ctx.meta.get("as_json"))) from error


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
    teardown,
    verify,
):
    main.add_command(command)
