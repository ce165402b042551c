"""PostgreSQL behind the task use cases (`worker.services.tasks.TaskStore`)."""

from uuid import UUID

from psycopg.rows import dict_row

from worker.db.connection import Connection
from worker.db.errors import translated
from worker.db.rules_reads import list_tasks
from worker.services.tasks import TaskQuery
from worker.views import TaskView

TASK_COLUMNS = """
task_id, order_number, title, assignee, due_at, rule_name, event_id, created_at, completed_at
"""

# Only an open task is completed, so a second completion keeps the first time.
COMPLETE_TASK = f"""
UPDATE tasks SET completed_at = now()
WHERE task_id = %(task_id)s AND completed_at IS NULL
RETURNING {TASK_COLUMNS}
"""

GET_TASK = f"SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = %(task_id)s"


class PostgresTasks:
    """The tasks table through one autocommit connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def list_tasks(self, query: TaskQuery) -> list[TaskView]:
        with translated():
            return list_tasks(
                self._conn, query.order_number, open_only=query.open_only, limit=query.limit
            )

    def complete(self, task_id: UUID) -> TaskView | None:
        with translated():
            with self._conn.cursor(row_factory=dict_row) as cur:
                row = cur.execute(COMPLETE_TASK, {"task_id": task_id}).fetchone()
            return None if row is None else TaskView(**row)

    def task(self, task_id: UUID) -> TaskView | None:
        with translated():
            with self._conn.cursor(row_factory=dict_row) as cur:
                row = cur.execute(GET_TASK, {"task_id": task_id}).fetchone()
            return None if row is None else TaskView(**row)
