"""What the CLI prints for a failure: one line that names the option or setting to fix.

Driver errors are translated into the project's own types first
(`worker.db.errors.translate`, `worker.messaging.errors.translate`), so the
exit code follows from what the failure means, not from which library raised
it. With `--json` anywhere on the command line the error is printed as one JSON
object on stdout instead, `{"error": ..., "option" | "setting": ...}`, with the
same exit code.
"""

from collections.abc import Callable, Sequence
from typing import IO, Any

import click
import psycopg
from pydantic import ValidationError

from worker.cli.output import ExitCode, json_text, visible
from worker.db import errors as db_errors
from worker.db.migrate import MigrationsMissing
from worker.db.workflow_store import SchemaMissing
from worker.errors import Misconfigured, OrderStatusError, Unavailable
from worker.messaging import errors as broker_errors
from worker.messaging.topology import TopologyMismatch
from worker.messaging.upstream import CommandNotRouted
from worker.redaction import redact
from worker.rules.loading import RuleFileInvalid
from worker.services.errors import InvalidRequest, NotFound

SERVER_VERBS = {"PostgreSQL": "cannot use PostgreSQL", "RabbitMQ": "cannot reach RabbitMQ"}


class CliError(click.ClickException):
    """A failure shown as one line (or one JSON object); exit code 1 unless a subclass says."""

    def __init__(
        self,
        message: str,
        *,
        option: str | None = None,
        setting: str | None = None,
        hint: str | None = None,
        as_json: bool = False,
    ) -> None:
        super().__init__(" ".join(message.split()))
        self.hint = hint
        self.secrets: Sequence[str] = ()
        """Passwords of the configured URLs, masked wherever the message quotes them."""
        self.option = option
        self.setting = setting
        self.as_json = as_json

    def show(self, file: IO[Any] | None = None) -> None:
        message = redact(self.message, self.secrets)
        if self.as_json:
            data = {"error": message}
            if self.option:
                data["option"] = self.option
            if self.setting:
                data["setting"] = self.setting
            click.echo(json_text(data))
            return
        hint = f" ({self.hint})" if self.hint else ""
        click.echo(f"Error: {visible(message, keep='')}{hint}", err=True)


class UsageFailure(CliError):
    """A bad option or setting: fix the command line or the environment."""

    exit_code = ExitCode.USAGE


class NotFoundFailure(CliError):
    """No such order, command, task or entry."""

    exit_code = ExitCode.NOT_FOUND


def settings_error(error: ValidationError, *, as_json: bool) -> CliError:
    """An invalid `ORDERS_*` variable, named, in one line."""
    problem = error.errors()[0]
    name = "ORDERS_" + "_".join(str(part) for part in problem["loc"]).upper()
    return UsageFailure(
        f"invalid configuration: {name}: {problem['msg']}",
        setting=name,
        as_json=as_json,
    )


def cli_error(error: Exception, *, as_json: bool) -> CliError | None:
    """The one-line error for `error`, or None for an error the CLI does not know."""
    if isinstance(error, psycopg.Error):
        error = db_errors.translate(error)
    elif isinstance(error, broker_errors.DRIVER_ERRORS):
        error = broker_errors.translate(error)
    for kinds, shown_as in _SHOWN_AS:
        if isinstance(error, kinds):
            shown = shown_as(error)
            shown.as_json = as_json
            return shown
    return None


def _unavailable(error: Unavailable) -> CliError:
    verb = SERVER_VERBS.get(error.server, f"cannot use {error.server}")
    return CliError(f"{verb}: {error.detail}")


def _invalid_request(error: InvalidRequest) -> CliError:
    option = f"--{error.field.replace('_', '-')}"
    return UsageFailure(f"Invalid value for '{option}': {error.detail}", option=option)


def _usage_error(error: click.UsageError) -> CliError:
    option = None
    if isinstance(error, click.BadParameter):
        hint = error.param_hint
        if error.param is not None and hint is None:
            hint = error.param.opts[0] if error.param.opts else error.param.name
        option = None if hint is None else str(hint).strip("'\"")
    command = error.ctx.command_path if error.ctx is not None else None
    hint = f"see '{command} --help'" if command else None
    return UsageFailure(error.format_message(), option=option, hint=hint)


FAILURES = (
    SchemaMissing,
    MigrationsMissing,
    TopologyMismatch,
    RuleFileInvalid,
    CommandNotRouted,
    OrderStatusError,
    click.ClickException,
)
"""Failures shown as their message with exit code 1 (CommandIdReused among them)."""

_SHOWN_AS: list[tuple[type[Exception] | tuple[type[Exception], ...], Callable[[Any], CliError]]] = [
    (CliError, lambda error: error),
    (click.UsageError, _usage_error),
    # Not a setting to change but a step to take (migrate; drain and redeclare): exit 1.
    ((SchemaMissing, TopologyMismatch), lambda error: CliError(str(error), setting=error.setting)),
    (Misconfigured, lambda error: UsageFailure(str(error), setting=error.setting)),
    (Unavailable, _unavailable),
    (NotFound, lambda error: NotFoundFailure(str(error))),
    (InvalidRequest, _invalid_request),
    (FAILURES, lambda error: CliError(_message(error))),
]


def _message(error: Exception) -> str:
    return error.format_message() if isinstance(error, click.ClickException) else str(error)
