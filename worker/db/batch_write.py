"""Write a decided batch in one statement: every effect, set-based, in arrival order.

One round trip, whatever the batch size. Each part is a data-modifying CTE fed
by unnest() over binary arrays. They all see the database as it was before the
statement, so the plan is shaped for that: an order registered in this batch is
inserted at the status and version it ends the batch with (moves of it are not
also sent as updates), and a command first seen in this batch is inserted with
its delivery count (only ids the inbox held before are counted up).

Foreign keys (history and lines to their order) are checked at the end of the
statement, when the new orders exist.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import Cursor

from contracts import EVENTS_BY_TYPE
from worker.db.errors import ConcurrentClaim, ConcurrentRegistration
from worker.db.outbox import OUTBOX_CHANNEL
from worker.domain.batch import BatchPlan, Registration

WRITE_BATCH = """
WITH claimed AS (
    INSERT INTO processed_commands (
        command_id, command_type, order_number, outcome, reason, detail, fingerprint,
        correlation_id, message_id, deliveries, processed_at, last_seen_at
    )
    SELECT command_id, command_type, order_number, outcome, reason, detail, fingerprint,
           correlation_id, message_id, deliveries, %(now)s, %(now)s
    FROM unnest(
        %(c_command_id)b::uuid[], %(c_command_type)b::text[], %(c_order_number)b::text[],
        %(c_outcome)b::text[], %(c_reason)b::text[], %(c_detail)b::text[],
        %(c_fingerprint)b::text[], %(c_correlation_id)b::text[], %(c_message_id)b::text[],
        %(c_deliveries)b::integer[]
    ) AS claim (
        command_id, command_type, order_number, outcome, reason, detail, fingerprint,
        correlation_id, message_id, deliveries
    )
    ON CONFLICT (command_id) DO NOTHING
    RETURNING 1
), seen_again AS (
    UPDATE processed_commands
    SET deliveries = deliveries + seen.times, last_seen_at = %(now)s
    FROM unnest(%(r_command_id)b::uuid[], %(r_times)b::integer[]) AS seen (command_id, times)
    WHERE processed_commands.command_id = seen.command_id
), registered AS (
    INSERT INTO orders (
        order_number, customer_id, customer_name, customer_type, amount, currency, order_date,
        status, version, creation_fingerprint, created_at, updated_at
    )
    SELECT order_number, customer_id, customer_name, customer_type, amount, currency,
           order_date, status, version, creation_fingerprint, %(now)s, %(now)s
    FROM unnest(
        %(o_order_number)b::text[], %(o_customer_id)b::text[], %(o_customer_name)b::text[],
        %(o_customer_type)b::text[], %(o_amount)b::numeric[], %(o_currency)b::text[],
        %(o_order_date)b::date[], %(o_status)b::text[], %(o_version)b::integer[],
        %(o_creation_fingerprint)b::text[]
    ) AS new (
        order_number, customer_id, customer_name, customer_type, amount, currency, order_date,
        status, version, creation_fingerprint
    )
    ON CONFLICT (order_number) DO NOTHING
    RETURNING 1
), lines AS (
    INSERT INTO order_lines (order_number, line_no, sku, name, quantity, unit_price)
    SELECT * FROM unnest(
        %(l_order_number)b::text[], %(l_line_no)b::integer[], %(l_sku)b::text[],
        %(l_name)b::text[], %(l_quantity)b::integer[], %(l_unit_price)b::numeric[]
    )
), moved AS (
    UPDATE orders SET status = moved.status, version = moved.version, updated_at = %(now)s
    FROM unnest(%(m_order_number)b::text[], %(m_status)b::text[], %(m_version)b::integer[])
        AS moved (order_number, status, version)
    WHERE orders.order_number = moved.order_number
), history AS (
    INSERT INTO order_status_history (
        order_number, from_status, to_status, version, actor, reason, changed_at,
        command_id, correlation_id, rule_depth
    )
    SELECT order_number, from_status, to_status, version, actor, reason, %(now)s,
           command_id, correlation_id, rule_depth
    FROM unnest(
        %(h_order_number)b::text[], %(h_from_status)b::text[], %(h_to_status)b::text[],
        %(h_version)b::integer[], %(h_actor)b::text[], %(h_reason)b::text[],
        %(h_command_id)b::uuid[], %(h_correlation_id)b::text[], %(h_rule_depth)b::integer[]
    ) WITH ORDINALITY AS entry (
        order_number, from_status, to_status, version, actor, reason, command_id,
        correlation_id, rule_depth, position
    )
    ORDER BY position
), events AS (
    INSERT INTO outbox (
        event_id, routing_key, message_type, payload, order_number, command_id, correlation_id
    )
    SELECT event_id, routing_key, message_type, payload::jsonb, order_number, command_id,
           correlation_id
    FROM unnest(
        %(e_event_id)b::uuid[], %(e_routing_key)b::text[], %(e_message_type)b::text[],
        %(e_payload)b::text[], %(e_order_number)b::text[], %(e_command_id)b::uuid[],
        %(e_correlation_id)b::text[]
    ) WITH ORDINALITY AS event (
        event_id, routing_key, message_type, payload, order_number, command_id,
        correlation_id, position
    )
    ORDER BY position
    RETURNING 1
)
SELECT (SELECT count(*) FROM claimed),
       (SELECT count(*) FROM registered),
       (SELECT count(pg_notify(%(channel)s, '')) FROM (SELECT 1 FROM events LIMIT 1) AS any_event)
"""


def write_batch(cur: Cursor[Any], plan: BatchPlan, now: datetime) -> None:
    """Write `plan` and wake the relay at commit if it wrote events.

    Raises ConcurrentClaim or ConcurrentRegistration (both retryable) if another
    transaction recorded one of the command ids or order numbers first.
    """
    row = cur.execute(WRITE_BATCH, _parameters(plan, now)).fetchone()
    claimed, registered, _ = row if row else (0, 0, 0)
    if claimed < len(plan.claims):
        raise ConcurrentClaim("a command id of this batch was recorded by another transaction")
    if registered < len(plan.registrations):
        raise ConcurrentRegistration("an order of this batch was registered by another transaction")


def _parameters(plan: BatchPlan, now: datetime) -> dict[str, Any]:
    registered = {r.command.order_number for r in plan.registrations}
    moves = {n: move for n, move in plan.moves.items() if n not in registered}
    return {
        "now": now,
        "channel": OUTBOX_CHANNEL,
        **_claims(plan),
        **_redeliveries(plan),
        **_registrations(plan.registrations, plan.moves),
        **_lines(plan.registrations),
        **_columns("m", ["order_number", "status", "version"],
                   [(n, status, version) for n, (status, version) in moves.items()]),
        **_history(plan),
        **_events(plan),
    }  # fmt: skip


def _columns(prefix: str, names: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """Turn rows into one array per column, named `{prefix}_{column}`."""
    columns: list[list[Any]] = [[] for _ in names]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return {f"{prefix}_{name}": column for name, column in zip(names, columns, strict=True)}


def _claims(plan: BatchPlan) -> dict[str, Any]:
    names = ["command_id", "command_type", "order_number", "outcome", "reason", "detail",
             "fingerprint", "correlation_id", "message_id", "deliveries"]  # fmt: skip
    rows = []
    for claim in plan.claims:
        result, incoming = claim.result, claim.incoming
        rows.append((
            result.command_id, type(incoming.command).__name__, result.order_number,
            result.outcome.value, result.reason.value if result.reason else None, result.detail,
            claim.fingerprint, incoming.correlation, incoming.message_id,
            plan.deliveries[result.command_id],
        ))  # fmt: skip
    return _columns("c", names, rows)


def _redeliveries(plan: BatchPlan) -> dict[str, Any]:
    return _columns("r", ["command_id", "times"], list(plan.redeliveries.items()))


def _registrations(
    registrations: Sequence[Registration], moves: dict[str, tuple[str, int]]
) -> dict[str, Any]:
    names = ["order_number", "customer_id", "customer_name", "customer_type", "amount",
             "currency", "order_date", "status", "version", "creation_fingerprint"]  # fmt: skip
    rows = []
    for registration in registrations:
        command = registration.command
        status, version = moves.get(command.order_number, (registration.status, 1))
        rows.append((
            command.order_number, command.customer.id, command.customer.name,
            command.customer.type, command.amount, command.currency, command.order_date,
            status, version, registration.creation_fingerprint,
        ))  # fmt: skip
    return _columns("o", names, rows)


def _lines(registrations: Sequence[Registration]) -> dict[str, Any]:
    rows = [
        (r.command.order_number, n, line.sku, line.name, line.quantity, line.unit_price)
        for r in registrations
        for n, line in enumerate(r.command.lines, start=1)
    ]
    return _columns("l", ["order_number", "line_no", "sku", "name", "quantity", "unit_price"], rows)


def _history(plan: BatchPlan) -> dict[str, Any]:
    names = ["order_number", "from_status", "to_status", "version", "actor", "reason",
             "command_id", "correlation_id", "rule_depth"]  # fmt: skip
    rows = [
        (e.incoming.command.order_number, e.from_status, e.to_status, e.version, e.actor,
         e.reason, e.incoming.command.command_id, e.incoming.correlation, e.rule_depth)
        for e in plan.history
    ]  # fmt: skip
    return _columns("h", names, rows)


def _events(plan: BatchPlan) -> dict[str, Any]:
    names = ["event_id", "routing_key", "message_type", "payload", "order_number",
             "command_id", "correlation_id"]  # fmt: skip
    rows = []
    for event, incoming in plan.events:
        kind = EVENTS_BY_TYPE[type(event).__name__]
        rows.append((
            event.event_id, kind.routing_key, kind.type_name, event.model_dump_json(),
            incoming.command.order_number, incoming.command.command_id, incoming.correlation,
        ))  # fmt: skip
    return _columns("e", names, rows)
