"""Points in the kernel where metrics and tracing attach once for every worker.

A hook is a method of `Hooks` that does nothing by default; an observer
overrides the ones it needs. Hooks run on the worker's thread, on the hot path:
keep them cheap, and never let them raise.
"""

from collections.abc import Sequence

from worker.kernel.delivery import Delivery
from worker.kernel.dispositions import Disposition, Poison, RetryLater


class Hooks:
    """No-op hooks; subclass and override what you observe."""

    def session_started(self, role: str) -> None:
        """A worker connected, declared and is about to consume."""

    def session_stopped(self, role: str, error: BaseException | None) -> None:
        """A worker's session ended: stopped (`error` None) or lost (`error` says why)."""

    def readiness_changed(self, role: str, ready: bool, why: str | None) -> None:
        """A worker became ready to work, or stopped being so (`why` names the cause)."""

    def before_batch(self, role: str, batch: Sequence[Delivery]) -> None:
        """A batch is about to be handed to the handler."""

    def after_batch(
        self,
        role: str,
        batch: Sequence[Delivery],
        dispositions: Sequence[Disposition],
        seconds: float,
    ) -> None:
        """A batch was handled, its failures routed and confirmed, and it was acked."""

    def failure_routed(
        self, role: str, delivery: Delivery, failure: Poison | RetryLater, destination: str
    ) -> None:
        """A delivery was sent to a retry tier or the dead-letter exchange (`destination`)."""
