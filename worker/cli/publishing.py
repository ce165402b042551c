"""`order-status publish`: send commands as an upstream system would, optionally waiting."""

import sys
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from uuid import UUID, uuid4

import click
from pydantic import ValidationError

from contracts import ChangeOrderStatus, Command, CommandOutcome, CreateOrder, Customer, OrderLine
from worker.cli.output import ExitCode, print_json
from worker.config import Settings
from worker.db.connection import Connection, connect
from worker.db.reads import SeenCommand, seen_command, wait_for_outcome
from worker.domain.fingerprints import fingerprint
from worker.messaging.topology import Topology
from worker.messaging.upstream import CommandNotRouted, publish_command
from worker.views import CommandRecord


@click.group()
def publish() -> None:
    """Publish a command to the commands exchange (with pika, JSON, confirms)."""


def _parse_line(text: str) -> OrderLine:
    """`SKU,QUANTITY,UNIT_PRICE,NAME`; the name may itself contain commas."""
    parts = text.split(",", 3)
    if len(parts) != 4:
        raise click.BadParameter(f"{text!r}: expected SKU,QUANTITY,UNIT_PRICE,NAME")
    sku, quantity, unit_price, name = (part.strip() for part in parts)
    try:
        return OrderLine(sku=sku, name=name, quantity=int(quantity), unit_price=Decimal(unit_price))
    except (ValueError, InvalidOperation, ValidationError) as error:
        raise click.BadParameter(f"{text!r}: {error}") from error


wait_options = [
    click.option("--command-id", type=click.UUID, help="Default: a new random id."),
    click.option("--correlation-id", help="Carried to every resulting event."),
    click.option("--wait", is_flag=True, help="Wait for the outcome; exit 3 if rejected."),
    click.option("--timeout", type=float, default=30.0, show_default=True, help="With --wait."),
    click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON."),
]


F = TypeVar("F", bound=Callable[..., Any])


def with_wait_options(function: F) -> F:
    """Add the options every publish command shares."""
    for option in reversed(wait_options):
        function = option(function)
    return function


@publish.command("create-order")
@click.argument("order_number")
@click.option("--customer-id", required=True)
@click.option("--customer-name", required=True)
@click.option("--customer-type", default="standard", show_default=True)
@click.option("--amount", required=True, help="Decimal, e.g. 20000.00")
@click.option("--currency", default="CNY", show_default=True)
@click.option(
    "--date", "order_date", type=click.DateTime(["%Y-%m-%d"]), help="Default: today (YYYY-MM-DD)."
)
@click.option("--line", "lines", multiple=True, help="SKU,QUANTITY,UNIT_PRICE,NAME (repeatable).")
@click.option("--actor", help="Who registers the order.")
@with_wait_options
@click.pass_obj
def create_order(
    settings: Settings,
    *,
    order_number: str,
    customer_id: str,
    customer_name: str,
    customer_type: str,
    amount: str,
    currency: str,
    order_date: datetime | None,
    lines: tuple[str, ...],
    actor: str | None,
    command_id: UUID | None,
    correlation_id: str | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Register order ORDER_NUMBER."""
    day = order_date.date() if order_date else date.today()
    try:
        command = CreateOrder(
            command_id=command_id or uuid4(),
            order_number=order_number,
            customer=Customer(id=customer_id, name=customer_name, type=customer_type),
            amount=Decimal(amount),
            currency=currency,
            order_date=day,
            lines=tuple(_parse_line(line) for line in lines),
            actor=actor,
        )
    except (ValidationError, InvalidOperation) as error:
        raise click.UsageError(str(error)) from error
    _send(
        settings,
        command,
        correlation_id=correlation_id,
        wait=wait,
        timeout=timeout,
        as_json=as_json,
        reused_id_possible=command_id is not None,
    )


@publish.command("change-status")
@click.argument("order_number")
@click.option("--to", "to_status", required=True, help="Target status, e.g. in_progress.")
@click.option("--actor", required=True, help="Who asks for the change.")
@click.option("--reason", help="Why; recorded in the history.")
@click.option("--expect-status", help="Refuse unless the order still has this status.")
@click.option("--expect-version", type=click.IntRange(min=1), help="Refuse unless at this version.")
@with_wait_options
@click.pass_obj
def change_status(
    settings: Settings,
    *,
    order_number: str,
    to_status: str,
    actor: str,
    reason: str | None,
    expect_status: str | None,
    expect_version: int | None,
    command_id: UUID | None,
    correlation_id: str | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Move order ORDER_NUMBER to another status."""
    try:
        command = ChangeOrderStatus(
            command_id=command_id or uuid4(),
            order_number=order_number,
            to_status=to_status,
            expected_status=expect_status,
            expected_version=expect_version,
            actor=actor,
            reason=reason,
        )
    except ValidationError as error:
        raise click.UsageError(str(error)) from error
    _send(
        settings,
        command,
        correlation_id=correlation_id,
        wait=wait,
        timeout=timeout,
        as_json=as_json,
        reused_id_possible=command_id is not None,
    )


def _send(
    settings: Settings,
    command: Command,
    *,
    correlation_id: str | None,
    wait: bool,
    timeout: float,
    as_json: bool,
    reused_id_possible: bool,
) -> None:
    topology = Topology.for_settings(settings)
    if not wait:
        # A random id is new; an id given on the command line may have been used.
        if reused_id_possible:
            with connect(settings, "cli", autocommit=True) as conn:
                _already_seen(conn, command)
        _publish(settings, topology, command, correlation_id)
        if as_json:
            print_json({"command_id": str(command.command_id), "published": True})
        else:
            click.echo(f"published {type(command).__name__} {command.command_id}")
        return
    # Connect before publishing: a database the CLI cannot reach must not leave a
    # published command behind that the caller does not know of and may send again.
    with connect(settings, "cli", autocommit=True) as conn:
        seen = _already_seen(conn, command) if reused_id_possible else None
        _publish(settings, topology, command, correlation_id)
        deliveries_before = seen.deliveries if seen else 0
        record = wait_for_outcome(
            conn, command.command_id, timeout, min_deliveries=deliveries_before + 1
        )
    if record is None:
        click.echo(f"no outcome for {command.command_id} after {timeout}s", err=True)
        sys.exit(ExitCode.TIMED_OUT)
    _report(record, repeated=seen is not None, as_json=as_json)
    if record.outcome == CommandOutcome.REJECTED:
        sys.exit(ExitCode.REJECTED)


def _publish(
    settings: Settings, topology: Topology, command: Command, correlation_id: str | None
) -> None:
    try:
        publish_command(settings.amqp_url, topology, command, correlation_id)
    except CommandNotRouted as error:
        raise click.ClickException(str(error)) from error


def _report(record: CommandRecord, *, repeated: bool, as_json: bool) -> None:
    """Print what became of this delivery: a repeated id is a `duplicate` of its first outcome."""
    if as_json:
        data = record.model_dump(mode="json")
        if repeated:
            data["recorded_outcome"] = data["outcome"]
            data["outcome"] = CommandOutcome.DUPLICATE.value
        print_json(data)
        return
    again = "duplicate delivery, nothing changed; recorded outcome: " if repeated else ""
    reason = f" ({record.reason}: {record.detail})" if record.reason else ""
    click.echo(f"{again}{record.outcome.value}{reason} command_id={record.command_id}")


def _already_seen(conn: Connection, command: Command) -> SeenCommand | None:
    """What the inbox knows of this command id; refuse to reuse it for other content."""
    seen = seen_command(conn, command.command_id)
    if seen is not None and seen.fingerprint != fingerprint(command):
        raise click.ClickException(
            f"command id {command.command_id} was already used for a command with other "
            "content; the worker would dead-letter this one as command_id_reused. "
            "Use a new --command-id."
        )
    return seen
