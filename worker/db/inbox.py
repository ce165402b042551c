"""The inbox: every command id ever processed, with its outcome and delivery count."""

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor

from contracts import CommandOutcome, RejectionReason
from worker.db.errors import ConcurrentClaim
from worker.domain.batch import Claim, RecordedCommand

SELECT_RECORDED = """
SELECT command_id, outcome, reason, detail, fingerprint
FROM processed_commands WHERE command_id = ANY(%(ids)s::uuid[])
"""

CLAIM_COMMANDS = """
INSERT INTO processed_commands (
    command_id, command_type, order_number, outcome, reason, detail,
    fingerprint, correlation_id, message_id, processed_at, last_seen_at
)
SELECT command_id, command_type, order_number, outcome, reason, detail,
       fingerprint, correlation_id, message_id, %(now)s, %(now)s
FROM unnest(
    %(command_id)s::uuid[], %(command_type)s::text[], %(order_number)s::text[],
    %(outcome)s::text[], %(reason)s::text[], %(detail)s::text[], %(fingerprint)s::text[],
    %(correlation_id)s::text[], %(message_id)s::text[]
) AS claim (
    command_id, command_type, order_number, outcome, reason, detail, fingerprint,
    correlation_id, message_id
)
ON CONFLICT (command_id) DO NOTHING
RETURNING command_id
"""

COUNT_REDELIVERIES = """
UPDATE processed_commands
SET deliveries = deliveries + seen.times, last_seen_at = %(now)s
FROM unnest(%(command_id)s::uuid[], %(times)s::integer[]) AS seen (command_id, times)
WHERE processed_commands.command_id = seen.command_id
"""


def recorded(cur: Cursor[Any], command_ids: Sequence[UUID]) -> dict[UUID, RecordedCommand]:
    """What the inbox already holds for any of `command_ids`."""
    return {
        command_id: RecordedCommand(
            outcome=CommandOutcome(outcome),
            reason=RejectionReason(reason) if reason else None,
            detail=detail,
            fingerprint=content,
        )
        for command_id, outcome, reason, detail, content in cur.execute(
            SELECT_RECORDED, {"ids": list(command_ids)}
        )
    }


def claim_all(cur: Cursor[Any], claims: Sequence[Claim], now: datetime) -> None:
    """Record each command with its outcome; raise ConcurrentClaim if one was taken meanwhile."""
    if not claims:
        return
    results = [claim.result for claim in claims]
    rows = cur.execute(
        CLAIM_COMMANDS,
        {
            "command_id": [result.command_id for result in results],
            "command_type": [type(claim.incoming.command).__name__ for claim in claims],
            "order_number": [result.order_number for result in results],
            "outcome": [result.outcome.value for result in results],
            "reason": [result.reason.value if result.reason else None for result in results],
            "detail": [result.detail for result in results],
            "fingerprint": [claim.fingerprint for claim in claims],
            "correlation_id": [claim.incoming.correlation for claim in claims],
            "message_id": [claim.incoming.message_id for claim in claims],
            "now": now,
        },
    ).fetchall()
    if len(rows) < len(claims):
        raise ConcurrentClaim(f"{len(claims) - len(rows)} command ids were recorded meanwhile")


def count_redeliveries(cur: Cursor[Any], times: Counter[UUID], now: datetime) -> None:
    """Count the further deliveries of commands the inbox already holds."""
    if times:
        ids = list(times)
        cur.execute(
            COUNT_REDELIVERIES,
            {"command_id": ids, "times": [times[command_id] for command_id in ids], "now": now},
        )
