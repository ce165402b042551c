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
FROM unnest(%(ids)b::uuid[]) AS wanted (command_id)
JOIN processed_commands USING (command_id)
"""

CLAIM_COMMANDS = """
INSERT INTO processed_commands (
    command_id, command_type, order_number, outcome, reason, detail,
    fingerprint, correlation_id, message_id, processed_at, last_seen_at
)
SELECT command_id, command_type, order_number, outcome, reason, detail,
       fingerprint, correlation_id, message_id, %(now)s, %(now)s
FROM unnest(
    %(command_id)b::uuid[], %(command_type)b::text[], %(order_number)b::text[],
    %(outcome)b::text[], %(reason)b::text[], %(detail)b::text[], %(fingerprint)b::text[],
    %(correlation_id)b::text[], %(message_id)b::text[]
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
FROM unnest(%(command_id)b::uuid[], %(times)b::integer[]) AS seen (command_id, times)
WHERE processed_commands.command_id = seen.command_id
"""


def send_recorded_query(cur: Cursor[Any], command_ids: Sequence[UUID]) -> None:
    """Ask what the inbox already holds for any of `command_ids`; read it with `recorded`."""
    cur.execute(SELECT_RECORDED, {"ids": list(command_ids)})


def recorded(cur: Cursor[Any]) -> dict[UUID, RecordedCommand]:
    """The answer to `send_recorded_query`, by command id."""
    return {
        command_id: RecordedCommand(
            outcome=CommandOutcome(outcome),
            reason=RejectionReason(reason) if reason else None,
            detail=detail,
            fingerprint=content,
        )
        for command_id, outcome, reason, detail, content in cur
    }


def claim_all(cur: Cursor[Any], claims: Sequence[Claim], now: datetime) -> None:
    """Record each command with its outcome; `check_claimed` then confirms none was taken."""
    if not claims:
        return
    results = [claim.result for claim in claims]
    cur.execute(
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
    )


def check_claimed(cur: Cursor[Any], claims: Sequence[Claim]) -> None:
    """Raise ConcurrentClaim if another transaction recorded one of these ids meanwhile."""
    if claims and len(cur.fetchall()) < len(claims):
        raise ConcurrentClaim("a command id of this batch was recorded by another transaction")


def count_redeliveries(cur: Cursor[Any], times: Counter[UUID], now: datetime) -> None:
    """Count the further deliveries of commands the inbox already holds."""
    if times:
        ids = list(times)
        cur.execute(
            COUNT_REDELIVERIES,
            {"command_id": ids, "times": [times[command_id] for command_id in ids], "now": now},
        )
