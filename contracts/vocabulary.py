"""Closed sets of words that travel in messages: outcomes and rejection reasons."""

from enum import StrEnum


class CommandOutcome(StrEnum):
    """What the status worker did with a command, as recorded in its inbox."""

    APPLIED = "applied"
    UNCHANGED = "unchanged"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class RejectionReason(StrEnum):
    """Why a command was refused; a business outcome, never a failure."""

    UNKNOWN_ORDER = "unknown_order"
    INVALID_TRANSITION = "invalid_transition"
    VERSION_CONFLICT = "version_conflict"
    UNKNOWN_STATUS = "unknown_status"
    DUPLICATE_ORDER = "duplicate_order"
