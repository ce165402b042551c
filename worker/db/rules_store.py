"""Write what the rules made of one event, in one transaction, and find stays to fire on.

The decisions are made before anything is written: this module reads the
state of the orders the event's `set_status` actions name (with the one read
of an order's state, `worker.db.order_state`), hands it to the pure planner
(`worker.rules.plan.plan_firings`) and writes the plan it returns. What is left
to decide here is what only the database knows:

- Whether a firing is new. Each verdict first claims (event id, rule) in
  `rule_firings`; only a new claim writes its tasks, outbox rows and
  `rule_actions` rows, so a redelivered event writes nothing again.
- Whether the database accepts a rule's effects. Each rule is written under
  its own savepoint: a data or integrity error rolls back that rule alone,
  which is then recorded as failed with the error, and the other rules of the
  event are still written.

Driver errors leave the functions as psycopg raised them; `DatabaseRulesStore`,
which the rules worker uses, translates them into the project's own types.
"""

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

import psycopg
from psycopg import Cursor
from psycopg.types.json import Jsonb

from worker.db import outbox
from worker.db.connection import Connection, Database
from worker.db.order_state import read_order_states
from worker.db.workflow_store import WorkflowCache
from worker.domain.workflow import Workflow
from worker.rules.engine import Verdict
from worker.rules.facts import Stay, TriggerEvent
from worker.rules.plan import (
    FiringRow,
    PlannedFiring,
    orders_to_read,
    plan_firings,
    recorded,
)

STAYS_PAGE = 200
"""Stays read per page by the scan for time-based rules."""

CLAIM_FIRING = """
INSERT INTO rule_firings (
    event_id, rule_name, order_number, order_version, trigger, outcome, reason, detail, depth,
    facts, correlation_id, fired_at
) VALUES (
    %(event_id)s, %(rule_name)s, %(order_number)s, %(order_version)s, %(trigger)s, %(outcome)s,
    %(reason)s, %(detail)s, %(depth)s, %(facts)s, %(correlation_id)s, %(fired_at)s
)
ON CONFLICT (event_id, rule_name) DO NOTHING
RETURNING event_id
"""

INSERT_ACTION = """
INSERT INTO rule_actions (
    event_id, rule_name, position, action, target, outcome, reason, detail, message_id
) VALUES (
    %(event_id)s, %(rule_name)s, %(position)s, %(action)s, %(target)s, %(outcome)s, %(reason)s,
    %(detail)s, %(message_id)s
)
"""

INSERT_TASK = """
INSERT INTO tasks (
    task_id, order_number, title, assignee, due_at, rule_name, event_id, created_at
) VALUES (
    %(task_id)s, %(order_number)s, %(title)s, %(assignee)s, %(due_at)s, %(rule_name)s,
    %(event_id)s, %(created_at)s
)
ON CONFLICT (task_id) DO NOTHING
"""

# Keyset pagination over (entered at, order number): one scan visits each stay
# at most once, so it ends, and stays whose condition was false (not recorded,
# judged again on every scan) cannot hide the stays behind them.
SELECT_STAYS = """
SELECT o.order_number, o.status, o.version, h.from_status, h.actor, h.reason, o.amount,
       o.currency, o.customer_id, o.customer_type, o.order_date, h.changed_at, h.correlation_id,
       h.rule_depth
FROM orders o
JOIN order_status_history h ON h.order_number = o.order_number AND h.version = o.version
WHERE o.status = %(status)s
  AND h.changed_at <= %(entered_before)s
  AND (%(after_at)s::timestamptz IS NULL
       OR (h.changed_at, o.order_number) > (%(after_at)s::timestamptz, %(after_number)s::text))
  AND NOT EXISTS (
      SELECT 1 FROM rule_firings f
      WHERE f.rule_name = %(rule_name)s
        AND f.order_number = o.order_number
        AND f.order_version = o.version
  )
ORDER BY h.changed_at, o.order_number
LIMIT %(limit)s
"""


def record_verdicts(
    conn: Connection,
    event: TriggerEvent,
    verdicts: Sequence[Verdict],
    workflow: Workflow,
    now: datetime,
) -> int:
    """Record the verdicts for `event` and their effects in one transaction.

    Returns how many firings were new. A verdict whose (event, rule) is already
    recorded is skipped entirely: that is what makes a redelivery harmless. A
    rule that did not match is not recorded, not even for a stay: its
    condition may hold on a later scan (`stayed_hours > 48.0` with `for: 24h`).
    """
    if not recorded(verdicts):
        return 0  # most events fire nothing: no transaction at all
    with conn.transaction(), conn.cursor() as cur:
        numbers = orders_to_read(verdicts)
        orders = read_order_states(conn, numbers) if numbers else {}
        plan = plan_firings(event, verdicts, workflow, orders, now)
        new = sum(_write_firing(conn, cur, planned) for planned in plan.firings)
        if new:
            outbox.notify_relay(cur)
    return new


def _write_firing(conn: Connection, cur: Cursor[Any], planned: PlannedFiring) -> int:
    """Claim the firing and write its effects under a savepoint; 1 if the claim was new."""
    try:
        with conn.transaction():
            if not _claim(cur, planned.firing):
                return 0
            _write_effects(cur, planned)
    except (psycopg.DataError, psycopg.IntegrityError) as error:
        # The savepoint is gone, and with it the claim: claim again, as failed.
        return int(_claim(cur, planned.refused(f"{type(error).__name__}: {error}")))
    return 1


def _claim(cur: Cursor[Any], firing: FiringRow) -> bool:
    """Insert the firing unless (event id, rule) is recorded already; True if it was new."""
    params = {**asdict(firing), "facts": Jsonb(firing.facts)}
    return cur.execute(CLAIM_FIRING, params).fetchone() is not None


def _write_effects(cur: Cursor[Any], planned: PlannedFiring) -> None:
    """The firing's tasks, its outbox rows in action order, then its `rule_actions` rows."""
    for task in planned.tasks:
        cur.execute(INSERT_TASK, task.model_dump())
    for row in planned.outbox:
        outbox.enqueue_message(cur, row)
    key = {"event_id": planned.firing.event_id, "rule_name": planned.firing.rule_name}
    for action in planned.actions:
        cur.execute(INSERT_ACTION, {**key, **asdict(action)})


def find_stays(
    conn: Connection,
    rule_name: str,
    status: str,
    entered_before: datetime,
    limit: int,
    *,
    after: tuple[datetime, str] | None = None,
) -> list[Stay]:
    """Orders in `status` since before `entered_before` that `rule_name` has not fired on.

    Oldest stay first; `after` (the last stay's entered_at and order number)
    asks for the next page.
    """
    after_at, after_number = after if after else (None, None)
    with conn.transaction():
        rows = conn.execute(
            SELECT_STAYS,
            {
                "status": status,
                "entered_before": entered_before,
                "after_at": after_at,
                "after_number": after_number,
                "rule_name": rule_name,
                "limit": limit,
            },
        ).fetchall()
    return [Stay(*row) for row in rows]


class DatabaseRulesStore:
    """The rules worker's database: verdicts recorded and stays found, errors as our own."""

    def __init__(self, database: Database, workflows: WorkflowCache) -> None:
        self._database = database
        self._workflows = workflows

    def workflow(self) -> Workflow:
        with self._database.use() as connection:
            return self._workflows.current(connection)

    def record(self, event: TriggerEvent, verdicts: list[Verdict], now: datetime) -> None:
        with self._database.use() as connection:
            record_verdicts(connection, event, verdicts, self._workflows.current(connection), now)

    def find_stays(
        self, rule: str, status: str, entered_before: datetime, after: tuple[datetime, str] | None
    ) -> list[Stay]:
        with self._database.use() as connection:
            return find_stays(connection, rule, status, entered_before, STAYS_PAGE, after=after)

    def close(self) -> None:
        self._database.close()
