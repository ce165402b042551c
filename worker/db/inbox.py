"""The inbox: every command id ever processed, with its outcome and delivery count."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg import Cursor

from contracts import CommandOutcome, RejectionReason
from worker.domain.batch import RecordedCommand

SELECT_RECORDED = """
SELECT command_id, outcome, reason, detail, fingerprint
FROM unnest(%(ids)b::uuid[]) AS wanted (command_id)
JOIN processed_commands USING (command_id)
"""


def recorded(cur: Cursor[Any], command_ids: Sequence[UUID]) -> dict[UUID, RecordedCommand]:
    """What the inbox already holds for any of `command_ids`, by command id."""
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
