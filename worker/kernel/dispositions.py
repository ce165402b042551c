"""What became of each delivery a handler was given: the one vocabulary every worker shares.

- `Done`: handled; its effects (an outcome, a rejection, stored verdicts) are committed.
- `Poison`: it will never be handled as it is: dead-lettered now, with its reason.
- `RetryLater`: handling failed for a reason that may pass: it waits in a retry tier.
- `HeldBack`: kept from overtaking an earlier delivery for the same key that waits
  in a tier; it follows that one (same tier or later, dead-lettered with it).
"""

from dataclasses import dataclass
from typing import Any

from worker.kernel.delivery import Delivery
from worker.messaging.poison import DeadLetterReason, Poison

__all__ = ["DeadLetterReason", "Disposition", "Done", "HeldBack", "Poison", "RetryLater"]


@dataclass(frozen=True)
class Done:
    """Handled, and committed; `result` is what the handler made of it (for logs and hooks)."""

    result: Any = None


@dataclass(frozen=True)
class RetryLater:
    """Handling failed for a reason that may pass (a lock, a deadlock, a refused publish)."""

    reason: str
    detail: str
    at_least_attempts: int = 0
    """Count the message as having failed at least this often (see `HeldBack`)."""


@dataclass(frozen=True)
class HeldBack:
    """Kept from overtaking `behind`, an earlier delivery for the same key that waits."""

    behind: Delivery
    detail: str


Disposition = Done | Poison | RetryLater | HeldBack
