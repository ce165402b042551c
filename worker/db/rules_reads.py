"""Queries behind the CLI for what rules did: firings of an order, tasks."""

from collections import defaultdict
from typing import Any

from psycopg.rows import dict_row

from worker.db.connection import Connection
from worker.views import RuleActionView, RuleFiringView, TaskView

GET_FIRINGS = """
SELECT event_id, rule_name, trigger, order_version, outcome, reason, detail, depth, facts,
       fired_at
FROM rule_firings
WHERE order_number = %(order_number)s
ORDER BY fired_at, rule_name
"""

# A set_status action's command is decided later by the status worker: its
# recorded outcome, if any, is the last word on what the action did.
GET_ACTIONS = """
SELECT a.event_id, a.rule_name, a.position, a.action, a.target, a.outcome, a.reason, a.detail,
       a.message_id, c.outcome AS command_outcome, c.reason AS command_reason
FROM rule_actions a
JOIN rule_firings f USING (event_id, rule_name)
LEFT JOIN processed_commands c ON a.action = 'set_status' AND c.command_id = a.message_id
WHERE f.order_number = %(order_number)s
ORDER BY a.event_id, a.rule_name, a.position
"""

LIST_TASKS = """
SELECT task_id, order_number, title, assignee, due_at, rule_name, event_id, created_at,
       completed_at
FROM tasks
WHERE (%(order_number)s::text IS NULL OR order_number = %(order_number)s)
  AND (NOT %(open_only)s OR completed_at IS NULL)
ORDER BY due_at, task_id
LIMIT %(limit)s
"""


def firings_for_order(conn: Connection, order_number: str) -> list[RuleFiringView]:
    """What rules did for the order, oldest first, each with its actions."""
    key = {"order_number": order_number}
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        firings = cur.execute(GET_FIRINGS, key).fetchall()
        actions: dict[tuple[Any, str], list[RuleActionView]] = defaultdict(list)
        for row in cur.execute(GET_ACTIONS, key).fetchall():
            owner = (row.pop("event_id"), row.pop("rule_name"))
            actions[owner].append(RuleActionView(**row))
    return [
        RuleFiringView(**row, actions=tuple(actions[(row["event_id"], row["rule_name"])]))
        for row in firings
    ]


def list_tasks(
    conn: Connection, order_number: str | None = None, *, open_only: bool = False, limit: int = 500
) -> list[TaskView]:
    """Tasks rules created, soonest due first."""
    params = {"order_number": order_number, "open_only": open_only, "limit": limit}
    with conn.cursor(row_factory=dict_row) as cur:
        return [TaskView(**row) for row in cur.execute(LIST_TASKS, params).fetchall()]
