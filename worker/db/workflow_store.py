"""Read the workflow from its tables, the one source of truth for every worker."""

import logging
import math
import time

from psycopg import errors

from worker.db.connection import Connection
from worker.domain.workflow import Status, Workflow
from worker.errors import DATABASE_SETTING, Misconfigured

SELECT_STATUSES = """
SELECT code, label_en, label_zh, is_initial FROM order_statuses ORDER BY position
"""
SELECT_TRANSITIONS = "SELECT from_status, to_status FROM order_status_transitions"

log = logging.getLogger(__name__)


class SchemaMissing(Misconfigured):
    """The database has not been migrated."""

    def __init__(self, detail: str) -> None:
        super().__init__(DATABASE_SETTING, detail)


def load_workflow(conn: Connection) -> Workflow:
    """Load the statuses and transitions the migrations put in the database."""
    try:
        with conn.transaction():
            status_rows = conn.execute(SELECT_STATUSES).fetchall()
            transition_rows = conn.execute(SELECT_TRANSITIONS).fetchall()
    except errors.UndefinedTable as error:
        raise SchemaMissing(
            "the database has no order-status schema; run `order-status migrate` first"
        ) from error
    statuses = [Status(code, label_en, label_zh) for code, label_en, label_zh, _ in status_rows]
    initial = [code for code, _, _, is_initial in status_rows if is_initial]
    if len(initial) != 1:
        raise ValueError("the workflow tables must mark exactly one initial status")
    return Workflow.build(statuses, initial[0], [(a, b) for a, b in transition_rows])


class WorkflowCache:
    """The workflow as last read, read again once it is older than `max_age_seconds`.

    An administrator's change to the workflow tables reaches running workers
    within that time, without a restart. If reading it again fails for a reason
    of the data (a half-edited workflow with no initial status, tables missing
    during a restore), the last good copy stays in use and a warning is logged;
    a database error still propagates, to be retried like any other.
    """

    def __init__(self, max_age_seconds: float) -> None:
        self._max_age = max_age_seconds
        self._workflow: Workflow | None = None
        self._loaded_at = 0.0

    def current(self, conn: Connection) -> Workflow:
        """The workflow to decide with; the first read's errors propagate as they are."""
        if self._workflow is not None and time.monotonic() - self._loaded_at <= self._max_age:
            return self._workflow
        try:
            workflow = load_workflow(conn)
        except (SchemaMissing, ValueError) as error:
            if self._workflow is None:
                raise
            log.warning("cannot read the workflow again; keeping the last copy", exc_info=error)
            self._loaded_at = time.monotonic()
            return self._workflow
        self._workflow, self._loaded_at = workflow, time.monotonic()
        return workflow

    def expire(self) -> None:
        """Read the workflow again on the next use, for a decision that may have been stale."""
        self._loaded_at = -math.inf
