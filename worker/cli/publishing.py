"""`order-status publish`: send commands as an upstream system would, optionally waiting."""

import sys
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypedDict, TypeVar, Unpack
from uuid import UUID, uuid4

import click
from pydantic import ValidationError

from contracts import ChangeOrderStatus, Command, CreateOrder, Customer
from worker.cli.options import DECIMAL_AMOUNT, contract_error, parse_line
from worker.cli.output import ExitCode, print_json
from worker.config import Settings
from worker.db.command_store import PostgresCommandInbox
from worker.db.connection import Database
from worker.messaging.topology import Topology
from worker.messaging.upstream import PikaCommandSender
from worker.services.commands import ACCEPTED, PublishResult, publish_command


@click.group()
def publish() -> None:
    """Publish a command to the commands exchange (with pika, JSON, confirms)."""


CREATE_ORDER_OPTIONS = {
    "order_number": "ORDER_NUMBER",
    "customer.id": "--customer-id",
    "customer.name": "--customer-name",
    "customer.type": "--customer-type",
    "amount": "--amount",
    "currency": "--currency",
    "order_date": "--date",
    "lines": "--line",
    "actor": "--actor",
    "command_id": "--command-id",
}
CHANGE_STATUS_OPTIONS = {
    "order_number": "ORDER_NUMBER",
    "to_status": "--to",
    "expected_status": "--expect-status",
    "expected_version": "--expect-version",
    "actor": "--actor",
    "reason": "--reason",
    "command_id": "--command-id",
}


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


class WaitOptions(TypedDict):
    """What `with_wait_options` passes to a publish command."""

    command_id: UUID | None
    correlation_id: str | None
    wait: bool
    timeout: float
    as_json: bool


@publish.command("create-order")
@click.argument("order_number")
@click.option("--customer-id", required=True)
@click.option("--customer-name", required=True)
@click.option("--customer-type", default="standard", show_default=True)
@click.option("--amount", type=DECIMAL_AMOUNT, required=True, help="Decimal, e.g. 20000.00")
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
    amount: Decimal,
    currency: str,
    order_date: datetime | None,
    lines: tuple[str, ...],
    actor: str | None,
    **options: Unpack[WaitOptions],
) -> None:
    """Register order ORDER_NUMBER."""
    day = order_date.date() if order_date else date.today()

    def command(command_id: UUID) -> CreateOrder:
        return CreateOrder(
            command_id=command_id,
            order_number=order_number,
            customer=Customer(id=customer_id, name=customer_name, type=customer_type),
            amount=amount,
            currency=currency,
            order_date=day,
            lines=tuple(parse_line(line) for line in lines),
            actor=actor,
        )

    _send(settings, command, CREATE_ORDER_OPTIONS, **options)


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
    **options: Unpack[WaitOptions],
) -> None:
    """Move order ORDER_NUMBER to another status."""

    def command(command_id: UUID) -> ChangeOrderStatus:
        return ChangeOrderStatus(
            command_id=command_id,
            order_number=order_number,
            to_status=to_status,
            expected_status=expect_status,
            expected_version=expect_version,
            actor=actor,
            reason=reason,
        )

    _send(settings, command, CHANGE_STATUS_OPTIONS, **options)


def _send(
    settings: Settings,
    build: Callable[[UUID], Command],
    option_names: dict[str, str],
    *,
    command_id: UUID | None,
    correlation_id: str | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Build the command (an invalid one names the option to fix), publish it, report."""
    try:
        command = build(command_id or uuid4())
    except ValidationError as error:
        raise contract_error(error, option_names) from error
    sender = PikaCommandSender(settings.amqp_url, Topology.for_settings(settings))
    database = Database(settings, "cli", autocommit=True)
    try:
        result = publish_command(
            command,
            inbox=PostgresCommandInbox(database),
            sender=sender,
            correlation_id=correlation_id,
            wait=wait,
            timeout=timeout,
            id_may_be_reused=command_id is not None,
        )
    finally:
        database.close()
    if not wait:
        if as_json:
            print_json(
                {"command_id": str(command.command_id), "published": True, "outcome": ACCEPTED}
            )
        else:
            click.echo(f"published {type(command).__name__} {command.command_id}")
        return
    if result.timed_out:
        click.echo(f"no outcome for {command.command_id} after {timeout}s", err=True)
        sys.exit(ExitCode.TIMED_OUT)
    _report(result, as_json=as_json)
    if result.rejected:
        sys.exit(ExitCode.REJECTED)


def _report(result: PublishResult, *, as_json: bool) -> None:
    """Print what became of this delivery: a repeated id is a `duplicate` of its first outcome."""
    if as_json:
        data = result.record.model_dump(mode="json") if result.record else {}
        data["outcome"] = result.outcome
        if result.recorded_outcome is not None:
            data["recorded_outcome"] = result.recorded_outcome.value
        data["version"] = result.version
        data["event_id"] = None if result.event_id is None else str(result.event_id)
        print_json(data)
        return
    recorded = result.recorded_outcome
    again = "duplicate delivery, nothing changed; recorded outcome: " if recorded else ""
    outcome = recorded.value if recorded else result.outcome
    reason = f" ({result.reason}: {result.detail})" if result.reason else ""
    click.echo(f"{again}{outcome}{reason} command_id={result.command_id}")
