"""`order-status tasks`: the follow-up tasks automation rules created; list and complete them."""

from uuid import UUID

import click

from worker.cli.output import console, print_json, table
from worker.config import Settings
from worker.db.connection import connect
from worker.db.task_store import PostgresTasks
from worker.services.tasks import MAX_TASKS, TaskQuery, complete_task, list_tasks


@click.group()
def tasks() -> None:
    """Follow-up tasks created by automation rules."""


@tasks.command("list")
@click.option("--order", "order_number", help="Only the tasks of this order.")
@click.option("--open", "open_only", is_flag=True, help="Only tasks not completed yet.")
@click.option("--limit", type=click.IntRange(1, MAX_TASKS), default=500, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_command(
    settings: Settings, *, order_number: str | None, open_only: bool, limit: int, as_json: bool
) -> None:
    """List tasks, soonest due first."""
    query = TaskQuery(order_number=order_number, open_only=open_only, limit=limit)
    with connect(settings, "cli", autocommit=True) as conn:
        found = list_tasks(PostgresTasks(conn), query)
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


@tasks.command("done")
@click.argument("task_id", type=click.UUID)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def done_command(settings: Settings, *, task_id: UUID, as_json: bool) -> None:
    """Mark task TASK_ID completed; a task completed before stays as it was (exit 0)."""
    with connect(settings, "cli", autocommit=True) as conn:
        completion = complete_task(PostgresTasks(conn), task_id)
    task = completion.task
    if as_json:
        data = task.model_dump(mode="json")
        data["already_completed"] = completion.already_completed
        print_json(data)
        return
    when = task.completed_at.isoformat(timespec="seconds") if task.completed_at else "-"
    if completion.already_completed:
        click.echo(f"task {task_id} was already completed at {when}; nothing changed")
    else:
        click.echo(f"completed task {task_id} ({task.title}, order {task.order_number}) at {when}")
