"""The follow-up tasks rules create: list them, and complete one.

Completing is idempotent: a task completed before keeps its first completion
time and is reported as such, so a caller that retries after a lost answer
changes nothing.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from worker.services.errors import InvalidRequest, NotFound
from worker.views import TaskView

MAX_TASKS = 10_000


@dataclass(frozen=True)
class TaskQuery:
    """Which tasks to list: those of one order, only open ones, at most `limit`."""

    order_number: str | None = None
    open_only: bool = False
    limit: int = 500


@dataclass(frozen=True)
class TaskCompletion:
    """The task after completing it; `already_completed` if this call changed nothing."""

    task: TaskView
    already_completed: bool


class TaskStore(Protocol):
    """The tasks table, as the use cases need it."""

    def list_tasks(self, query: TaskQuery) -> Sequence[TaskView]:
        """Matching tasks, soonest due first."""

    def complete(self, task_id: UUID) -> TaskView | None:
        """Mark an open task completed now and return it; None if no open task has this id."""

    def task(self, task_id: UUID) -> TaskView | None: ...


def list_tasks(store: TaskStore, query: TaskQuery) -> list[TaskView]:
    """The tasks `query` asks for, soonest due first."""
    if not 1 <= query.limit <= MAX_TASKS:
        raise InvalidRequest("limit", f"limit must be between 1 and {MAX_TASKS}")
    return list(store.list_tasks(query))


def complete_task(store: TaskStore, task_id: UUID) -> TaskCompletion:
    """Complete task `task_id`; completing it again changes nothing. NotFound if no such task."""
    completed = store.complete(task_id)
    if completed is not None:
        return TaskCompletion(completed, already_completed=False)
    existing = store.task(task_id)
    if existing is None:
        raise NotFound(f"no task {task_id}")
    return TaskCompletion(existing, already_completed=True)
