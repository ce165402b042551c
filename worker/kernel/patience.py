"""How long a worker keeps trying through a fault that will not clear by itself.

A `Misconfigured` fault (login refused, database missing, schema not migrated,
a privilege missing, a queue declared with other arguments) is said once, in
one line naming the setting; the worker shows itself not ready and keeps
trying, in case an operator fixes it, for `give_up_after_seconds`; then it
raises `GaveUp`, so the process exits non-zero and its supervisor restarts it
and alerts. Any success (a session that became ready, a batch that went
through) forgets the fault, so an old one never shortens a new one's time.
"""

import logging
import time

from worker.errors import Misconfigured
from worker.kernel.hooks import Hooks

log = logging.getLogger(__name__)


class GaveUp(Exception):
    """A fault that does not clear by itself outlasted the worker's patience."""


class Patience:
    """One worker's clock for lasting faults, shared by its sessions and its attempt runner."""

    def __init__(self, role: str, give_up_after_seconds: float, hooks: Hooks) -> None:
        self._role = role
        self._give_up_after = give_up_after_seconds
        self._hooks = hooks
        self._since: float | None = None
        self._said: str | None = None

    def judge(self, error: Misconfigured) -> None:
        """Say `error` once, show the worker not ready; raise GaveUp once it has lasted too long."""
        now = time.monotonic()
        if self._since is None:
            self._since = now
        if str(error) != self._said:
            log.error(
                "%s cannot work: %s; giving up in %.0fs unless it is fixed",
                self._role.replace("-", " "),
                error,
                max(0.0, self._give_up_after - (now - self._since)),
                extra={"worker": self._role, "setting": error.setting},
            )
            self._said = str(error)
            self._hooks.readiness_changed(self._role, False, str(error))
        if now - self._since >= self._give_up_after:
            raise GaveUp(f"{self._role} gave up: {error}") from error

    def recovered(self) -> None:
        """Forget the fault: the worker works again."""
        if self._since is not None:
            log.info("%s works again", self._role.replace("-", " "), extra={"worker": self._role})
        self._since, self._said = None, None
