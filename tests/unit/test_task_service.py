"""Completing and listing tasks, against an in-memory task store."""

from datetime import timedelta
from uuid import uuid4

import pytest

from tests.unit.fakes import NOW, FakeTasks
from worker.services.errors import InvalidRequest, NotFound
from worker.services.tasks import TaskQuery, complete_task, list_tasks
from worker.views import TaskView


def task(order_number: str, hours: int) -> TaskView:
    return TaskView(
        task_id=uuid4(),
        order_number=order_number,
        title="call the customer",
        assignee="sales",
        due_at=NOW + timedelta(hours=hours),
        rule_name="r",
        event_id=uuid4(),
        created_at=NOW,
        completed_at=None,
    )


def test_completing_twice_changes_nothing_the_second_time() -> None:
    first = task("SO-1", 1)
    store = FakeTasks({first.task_id: first})

    done = complete_task(store, first.task_id)
    again = complete_task(store, first.task_id)

    assert not done.already_completed
    assert done.task.completed_at == NOW
    assert again.already_completed
    assert again.task == done.task


def test_an_unknown_task_is_not_found() -> None:
    with pytest.raises(NotFound):
        complete_task(FakeTasks(), uuid4())


def test_open_only_leaves_out_completed_tasks() -> None:
    soon, later = task("SO-1", 1), task("SO-2", 2)
    store = FakeTasks({soon.task_id: soon, later.task_id: later})
    complete_task(store, soon.task_id)

    assert [t.task_id for t in list_tasks(store, TaskQuery(open_only=True))] == [later.task_id]
    assert [t.task_id for t in list_tasks(store, TaskQuery())] == [soon.task_id, later.task_id]


def test_a_limit_out_of_range_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        list_tasks(FakeTasks(), TaskQuery(limit=0))
