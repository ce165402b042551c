"""Commands for reading state: orders list/show, commands show, statuses."""

from datetime import date, datetime
from uuid import UUID

import click
from rich.table import Table

from worker.cli.output import console, print_json, table
from worker.config import Settings
from worker.db.command_store import PostgresCommandInbox
from worker.db.connection import Connection, Database, connect
from worker.db.order_store import PostgresOrders
from worker.db.workflow_store import load_workflow
from worker.domain.workflow import Workflow
from worker.rules.facts import FACT_NAMES
from worker.services.commands import command_outcome
from worker.services.orders import (
    MAX_PAGE,
    OrderFilter,
    OrderListQuery,
    OrderPage,
    OrderSort,
    list_orders,
    show_order,
)
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


SORTS = [sort.value for sort in OrderSort]


@orders.command("list")
@click.option("--status", help="Only orders in this status.")
@click.option("--customer", help="Customer name contains TEXT, or customer id is TEXT.")
@click.option("--customer-type", help="Only customers of this type, e.g. enterprise.")
@click.option("--number", help="Order number contains TEXT.")
@click.option("--since", type=DATE, help="Order date on or after (YYYY-MM-DD).")
@click.option("--until", type=DATE, help="Order date on or before (YYYY-MM-DD).")
@click.option(
    "--sort",
    type=click.Choice([*SORTS, *(f"-{sort}" for sort in SORTS)]),
    default="-date",
    show_default=True,
    help="number, date, created, updated or amount; a leading - sorts descending.",
)
@click.option("--limit", type=click.IntRange(1, MAX_PAGE), default=50, show_default=True)
@click.option("--after", help="Start after this cursor (the `next` of the page before).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_command(
    settings: Settings,
    *,
    status: str | None,
    customer: str | None,
    customer_type: str | None,
    number: str | None,
    since: datetime | None,
    until: datetime | None,
    sort: str,
    limit: int,
    after: str | None,
    as_json: bool,
) -> None:
    """List orders, newest order date first unless --sort says otherwise."""
    query = OrderListQuery(
        filter=OrderFilter(
            status=status,
            customer=customer,
            number=number,
            customer_type=customer_type,
            since=_day(since),
            until=_day(until),
        ),
        sort=OrderSort(sort.lstrip("-")),
        descending=sort.startswith("-"),
        limit=limit,
        after=after,
    )
    with _open(settings) as conn:
        store = PostgresOrders(conn)
        page = list_orders(store, query)
        workflow = store.workflow()
    if as_json:
        print_json(
            {
                "items": [order.model_dump(mode="json") for order in page.items],
                "total": page.total,
                "next": page.next,
            }
        )
        return
    console().print(_orders_table(page, workflow))
    if page.next is not None:
        click.echo(f"more: --after {page.next}")


def _orders_table(page: OrderPage, workflow: Workflow) -> Table:
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
        for order in page.items
    ]
    columns = ("order", "status", "version", "amount", "customer", "date", "updated")
    shown = f"{len(page.items)} of {page.total} orders"
    result = table(shown, columns, rows)
    # An order number is a key people copy: never cut it, however narrow the terminal.
    result.columns[0].no_wrap = True
    result.columns[0].overflow = "fold"
    result.columns[0].min_width = max((len(o.order_number) for o in page.items), default=5)
    return result


def _day(moment: datetime | None) -> date | None:
    return moment.date() if moment else None


@orders.command("show")
@click.argument("order_number")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def show_order_command(settings: Settings, *, order_number: str, as_json: bool) -> None:
    """Show an order: lines, history, rule firings, tasks, next statuses and its commands."""
    with _open(settings) as conn:
        store = PostgresOrders(conn)
        order = show_order(store, order_number)
        workflow = store.workflow()
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
        ("may move to", ", ".join(order.next_statuses) or None),
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
                t.task_id,
            )
            for t in order.tasks
        ]
        out.print(table("tasks", ("title", "assignee", "due", "state", "rule", "task id"), tasks))
    _print_commands(order)


def _print_commands(order: OrderDetail) -> None:
    """Every command recorded for the order; a rejected one with its reason and detail."""
    rows = [
        (
            _when(command.processed_at),
            command.command_type,
            command.outcome.value,
            f"{command.reason}: {command.detail}" if command.reason else None,
            command.deliveries,
            command.command_id,
        )
        for command in order.commands
    ]
    rejected = sum(1 for command in order.commands if command.reason)
    title = f"commands ({rejected} rejected)"
    columns = ("processed", "type", "outcome", "why rejected", "deliveries", "command id")
    console().print(table(title, columns, rows))


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
    database = Database(settings, "cli", autocommit=True)
    try:
        record = command_outcome(PostgresCommandInbox(database), command_id)
    finally:
        database.close()
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
