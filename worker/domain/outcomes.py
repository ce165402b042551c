"""What became of one command."""

from dataclasses import dataclass
from uuid import UUID

from contracts import CommandOutcome, RejectionReason


@dataclass(frozen=True)
class ApplyResult:
    """The outcome of one command, as recorded in the inbox."""

    command_id: UUID
    order_number: str
    outcome: CommandOutcome
    reason: RejectionReason | None = None
    detail: str | None = None
    redelivered: bool = False
    """The command id had been processed before; nothing changed this time."""
    content_conflict: bool = False
    """The command id had been processed before with different content."""
