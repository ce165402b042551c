"""`order-status tasks list`: the follow-up tasks automation rules created."""

import click

from worker.cli.output import console, print_json, table
from worker.config import Settings
from worker.db.connection import connect
from worker.db.rules_reads import list_tasks


@click.group()
def tasks() -> None:
    """Follow-up tasks created by automation rules."""


@tasks.command("list")
@click.option("--order", "order_number", help="Only the tasks of this order.")
@click.option("--open", "open_only", is_flag=True, help="Only tasks not completed yet.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=500, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_command(
    settings: Settings, *, order_number: str | None, open_only: bool, limit: int, as_json: bool
) -> None:
    """List tasks, soonest due first."""
    with connect(settings, "cli", autocommit=True) as conn:
        found = list_tasks(conn, order_number, open_only=open_only, limit=limit)
    if as_json:
        print_json(found)
        return
    rows = [
        (
            task.order_number,
            task.title,
            task.assignee,
            task.due_at.isoformat(timespec="minutes"),
            "done" if task.completed_at else "open",
            task.rule_name,
            task.task_id,
        )
        for task in found
    ]
    columns = ("order", "title", "assignee", "due", "state", "rule", "task id")
    console().print(table(f"{len(found)} tasks", columns, rows))
