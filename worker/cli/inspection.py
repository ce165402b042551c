"""Commands for reading state: orders list/show, commands show, statuses."""

import sys
from datetime import date, datetime
from uuid import UUID

import click

from worker.cli.output import ExitCode, console, print_json, table
from worker.config import Settings
from worker.db.connection import Connection, connect
from worker.db.reads import OrderFilter, get_command, get_order, list_orders
from worker.db.rules_reads import firings_for_order, list_tasks
from worker.db.workflow_store import load_workflow
from worker.domain.workflow import Workflow
from worker.rules.facts import FACT_NAMES
from worker.views import OrderDetail

DATE = click.DateTime(["%Y-%m-%d"])


def _open(settings: Settings) -> Connection:
    return connect(settings, "cli", autocommit=True)


def _labelled(workflow: Workflow, code: str | None) -> str | None:
    labels = {status.code: status.label_zh for status in workflow.statuses}
    return None if code is None else f"{code} {labels.get(code, '')}".rstrip()


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


@click.group()
def orders() -> None:
    """List and show orders."""


@orders.command("list")
@click.option("--status", help="Only orders in this status.")
@click.option("--customer", help="Customer name contains TEXT, or customer id is TEXT.")
@click.option("--number", help="Order number contains TEXT.")
@click.option("--since", type=DATE, help="Order date on or after (YYYY-MM-DD).")
@click.option("--until", type=DATE, help="Order date on or before (YYYY-MM-DD).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_command(
    settings: Settings,
    *,
    status: str | None,
    customer: str | None,
    number: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    as_json: bool,
) -> None:
    """List orders, newest order date first."""
    order_filter = OrderFilter(
        status=status,
        customer=customer,
        number=number,
        since=_day(since),
        until=_day(until),
        limit=limit,
    )
    with _open(settings) as conn:
        workflow = load_workflow(conn)
        if status is not None and not workflow.knows(status):
            known = ", ".join(s.code for s in workflow.statuses)
            raise click.BadParameter(
                f"{status!r} is not a status; known: {known}", param_hint="--status"
            )
        found = list_orders(conn, order_filter)
    if as_json:
        print_json(found)
        return
    rows = [
        (
            order.order_number,
            _labelled(workflow, order.status),
            order.version,
            f"{order.amount} {order.currency}",
            f"{order.customer.name} ({order.customer.type})",
            order.order_date,
            _when(order.updated_at),
        )
        for order in found
    ]
    columns = ("order", "status", "version", "amount", "customer", "date", "updated")
    console().print(table(f"{len(found)} orders", columns, rows))


def _day(moment: datetime | None) -> date | None:
    return moment.date() if moment else None


@orders.command("show")
@click.argument("order_number")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def show_order(settings: Settings, *, order_number: str, as_json: bool) -> None:
    """Show an order, its lines, its status history and what automation rules did."""
    with _open(settings) as conn:
        order = get_order(conn, order_number)
        workflow = load_workflow(conn)
        if order is not None:
            order = order.model_copy(
                update={
                    "rule_firings": tuple(firings_for_order(conn, order_number)),
                    "tasks": tuple(list_tasks(conn, order_number)),
                }
            )
    if order is None:
        click.echo(f"no order {order_number}", err=True)
        sys.exit(ExitCode.NOT_FOUND)
    if as_json:
        print_json(order)
        return
    out = console()
    fields = [
        ("status", _labelled(workflow, order.status)),
        ("version", order.version),
        ("amount", f"{order.amount} {order.currency}"),
        ("customer", f"{order.customer.name} (id {order.customer.id}, {order.customer.type})"),
        ("order date", order.order_date),
        ("created", _when(order.created_at)),
        ("updated", _when(order.updated_at)),
    ]
    out.print(table(f"order {order.order_number}", ("field", "value"), fields))
    if order.lines:
        lines = [(ln.sku, ln.name, ln.quantity, ln.unit_price) for ln in order.lines]
        out.print(table("lines", ("sku", "name", "quantity", "unit price"), lines))
    history = [
        (
            entry.version,
            _labelled(workflow, entry.from_status),
            _labelled(workflow, entry.to_status),
            entry.actor,
            entry.reason,
            _when(entry.changed_at),
            entry.command_id,
        )
        for entry in order.history
    ]
    columns = ("version", "from", "to", "actor", "reason", "time", "command id")
    out.print(table("history", columns, history))
    if order.rule_firings:
        out.print(
            table(
                "rule firings",
                (
                    "time",
                    "rule",
                    "trigger",
                    "outcome",
                    "why",
                    "actions",
                    "values the condition saw",
                ),
                _firing_rows(order),
            )
        )
    if order.tasks:
        tasks = [
            (
                t.title,
                t.assignee,
                _when(t.due_at),
                "done" if t.completed_at else "open",
                t.rule_name,
            )
            for t in order.tasks
        ]
        out.print(table("tasks", ("title", "assignee", "due", "state", "rule"), tasks))


def _firing_rows(order: OrderDetail) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for firing in order.rule_firings:
        actions = "\n".join(
            f"{a.position}. {a.action} {a.target}: {a.outcome}"
            + (f" ({a.reason}: {a.detail})" if a.reason else "")
            + (f"; command {a.command_outcome}" if a.command_outcome else "")
            + (f" ({a.command_reason})" if a.command_reason else "")
            for a in firing.actions
        )
        outcome = firing.outcome + (f" ({firing.reason})" if firing.reason else "")
        # In the documented order; jsonb does not keep the order keys were written in.
        seen = ", ".join(
            f"{name}={firing.facts[name]}"
            for name in FACT_NAMES
            if firing.facts.get(name) is not None
        )
        rows.append(
            (
                _when(firing.fired_at),
                firing.rule_name,
                f"{firing.trigger} v{firing.order_version} depth {firing.depth}",
                outcome,
                firing.detail,
                actions or None,
                seen,
            )
        )
    return rows


@click.group()
def commands() -> None:
    """Look up what became of a command."""


@commands.command("show")
@click.argument("command_id", type=click.UUID)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def show_command(settings: Settings, *, command_id: UUID, as_json: bool) -> None:
    """Show a command's outcome and reason."""
    with _open(settings) as conn:
        record = get_command(conn, command_id)
    if record is None:
        click.echo(f"no command {command_id} has been processed", err=True)
        sys.exit(ExitCode.NOT_FOUND)
    if as_json:
        print_json(record)
        return
    fields = [
        ("type", record.command_type),
        ("order", record.order_number),
        ("outcome", record.outcome.value),
        ("reason", record.reason),
        ("detail", record.detail),
        ("correlation id", record.correlation_id),
        ("processed", _when(record.processed_at)),
        ("deliveries", record.deliveries),
    ]
    console().print(table(f"command {record.command_id}", ("field", "value"), fields))


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def statuses(settings: Settings, *, as_json: bool) -> None:
    """Show the workflow: statuses with their labels and the allowed transitions."""
    with _open(settings) as conn:
        workflow = load_workflow(conn)
    if as_json:
        print_json(
            {
                "initial": workflow.initial,
                "statuses": [
                    {
                        "code": status.code,
                        "label_en": status.label_en,
                        "label_zh": status.label_zh,
                        "next": workflow.next_statuses(status.code),
                    }
                    for status in workflow.statuses
                ],
            }
        )
        return
    rows = [
        (
            status.code + (" (initial)" if status.code == workflow.initial else ""),
            status.label_zh,
            status.label_en,
            ", ".join(workflow.next_statuses(status.code)) or "-",
        )
        for status in workflow.statuses
    ]
    console().print(table("workflow", ("status", "中文", "English", "may move to"), rows))
