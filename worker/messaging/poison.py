"""Messages that cannot be applied, and the reasons we give for them."""

from dataclasses import dataclass
from enum import StrEnum


class DeadLetterReason(StrEnum):
    """Why a message went to the dead-letter exchange (header `x-dead-letter-reason`)."""

    MALFORMED_JSON = "malformed_json"
    SCHEMA_VIOLATION = "schema_violation"
    UNKNOWN_TYPE = "unknown_type"
    UNSUPPORTED_CONTENT_TYPE = "unsupported_content_type"
    COMMAND_ID_REUSED = "command_id_reused"
    APPLY_FAILED = "apply_failed"
    RETRIES_EXHAUSTED = "retries_exhausted"


@dataclass(frozen=True)
class Poison:
    """A message that will never apply as it is: it goes to the dead-letter exchange."""

    reason: DeadLetterReason
    detail: str
