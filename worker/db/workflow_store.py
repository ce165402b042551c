"""Read the workflow from its tables, the one source of truth for every worker."""

from psycopg import errors

from worker.db.connection import Connection
from worker.domain.workflow import Status, Workflow

SELECT_STATUSES = """
SELECT code, label_en, label_zh, is_initial FROM order_statuses ORDER BY position
"""
SELECT_TRANSITIONS = "SELECT from_status, to_status FROM order_status_transitions"


class SchemaMissing(Exception):
    """The database has not been migrated."""


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
