"""The inbox: every command id ever processed, with its outcome and delivery count."""

from datetime import datetime
from typing import Any

from psycopg import Cursor

from contracts import CommandOutcome, RejectionReason
from worker.domain.incoming import IncomingCommand
from worker.domain.outcomes import ApplyResult

CLAIM_COMMAND = """
INSERT INTO processed_commands (
    command_id, command_type, order_number, outcome, reason, detail,
    fingerprint, correlation_id, message_id, processed_at, last_seen_at
) VALUES (
    %(command_id)s, %(command_type)s, %(order_number)s, %(outcome)s, %(reason)s, %(detail)s,
    %(fingerprint)s, %(correlation_id)s, %(message_id)s, %(now)s, %(now)s
)
ON CONFLICT (command_id) DO NOTHING
RETURNING command_id
"""

RECORD_REDELIVERY = """
UPDATE processed_commands
SET deliveries = deliveries + 1, last_seen_at = %(now)s
WHERE command_id = %(command_id)s
RETURNING outcome, reason, detail, fingerprint
"""


def claim(
    cur: Cursor[Any],
    incoming: IncomingCommand,
    result: ApplyResult,
    fingerprint: str,
    now: datetime,
) -> bool:
    """Record the command and its outcome; False if its id was already recorded."""
    claimed = cur.execute(
        CLAIM_COMMAND,
        {
            "command_id": result.command_id,
            "command_type": type(incoming.command).__name__,
            "order_number": result.order_number,
            "outcome": result.outcome.value,
            "reason": result.reason.value if result.reason else None,
            "detail": result.detail,
            "fingerprint": fingerprint,
            "correlation_id": incoming.correlation,
            "message_id": incoming.message_id,
            "now": now,
        },
    ).fetchone()
    return claimed is not None


def record_redelivery(
    cur: Cursor[Any], incoming: IncomingCommand, fingerprint: str, now: datetime
) -> ApplyResult:
    """Count one more delivery of a known command and return its recorded outcome."""
    command = incoming.command
    row = cur.execute(RECORD_REDELIVERY, {"command_id": command.command_id, "now": now}).fetchone()
    if row is None:
        raise RuntimeError(f"command {command.command_id} vanished from the inbox")
    outcome, reason, detail, recorded_fingerprint = row
    return ApplyResult(
        command_id=command.command_id,
        order_number=command.order_number,
        outcome=CommandOutcome(outcome),
        reason=RejectionReason(reason) if reason else None,
        detail=detail,
        redelivered=True,
        content_conflict=recorded_fingerprint != fingerprint,
    )
