"""The task and command-inbox stores against PostgreSQL: completing tasks, command effects."""

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from tests.support.commands import change_status, create_order
from worker.config import Settings
from worker.db.apply import apply_commands
from worker.db.command_store import PostgresCommandInbox
from worker.db.connection import Database
from worker.db.task_store import PostgresTasks
from worker.db.workflow_store import load_workflow
from worker.domain.incoming import IncomingCommand
from worker.services.errors import NotFound
from worker.services.tasks import TaskQuery, complete_task, list_tasks

Conn = psycopg.Connection[tuple[Any, ...]]

INSERT_TASK = """
INSERT INTO tasks (task_id, order_number, title, assignee, due_at, rule_name, event_id, created_at)
VALUES (%(task_id)s, %(order_number)s, 'call the customer', 'sales', %(due_at)s, 'r', %(event)s,
        now())
"""


def apply(database_url: str, *commands: Any) -> None:
    with psycopg.connect(database_url) as conn:
        workflow = load_workflow(conn)
        for command in commands:
            apply_commands(conn, workflow, [IncomingCommand(command)])


def add_task(db: Conn, order_number: str) -> UUID:
    task_id = uuid4()
    db.execute(
        INSERT_TASK,
        {
            "task_id": task_id,
            "order_number": order_number,
            "due_at": datetime(2026, 12, 1, tzinfo=UTC),
            "event": uuid4(),
        },
    )
    return task_id


def test_completing_a_task_is_idempotent_and_open_then_filters(database_url: str, db: Conn) -> None:
    apply(database_url, create_order("SO-TASK-1"))
    done, still_open = add_task(db, "SO-TASK-1"), add_task(db, "SO-TASK-1")
    store = PostgresTasks(db)

    first = complete_task(store, done)
    again = complete_task(store, done)

    assert not first.already_completed
    assert first.task.completed_at is not None
    assert again.already_completed
    assert again.task.completed_at == first.task.completed_at
    open_ids = [task.task_id for task in list_tasks(store, TaskQuery(open_only=True))]
    assert open_ids == [still_open]
    assert len(list_tasks(store, TaskQuery(order_number="SO-TASK-1"))) == 2


def test_completing_an_unknown_task_is_not_found(db: Conn) -> None:
    with pytest.raises(NotFound):
        complete_task(PostgresTasks(db), uuid4())


def test_the_inbox_reports_the_version_and_event_a_command_wrote(
    database_url: str, settings: Settings
) -> None:
    create = create_order("SO-EFFECT-1")
    start = change_status("SO-EFFECT-1", "in_progress")
    refused = change_status("SO-EFFECT-1", "pending_review")
    apply(database_url, create, start, refused)
    database = Database(settings, "test", autocommit=True)
    try:
        inbox = PostgresCommandInbox(database)
        moved, rejected = inbox.effects(start.command_id), inbox.effects(refused.command_id)
        record = inbox.outcome(refused.command_id)
        seen = inbox.seen(start.command_id)
        unknown = inbox.effects(uuid4())
    finally:
        database.close()
    assert moved.version == 2
    assert moved.event_id is not None
    assert rejected.version is None
    assert rejected.event_id is not None, "a rejection is announced too"
    assert record is not None
    assert record.reason == "invalid_transition"
    assert seen is not None
    assert seen.deliveries == 1
    assert (unknown.version, unknown.event_id) == (None, None)
