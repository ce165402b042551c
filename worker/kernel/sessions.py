"""A worker's sessions: start again after a lost connection, give up on what will not clear.

- `Unavailable` (refused, reset, a server restarting): reconnect with capped
  backoff, for as long as it takes; a session that lasted longer than the
  longest wait starts the backoff afresh, so a new outage after a good day is
  retried quickly.
- `Misconfigured` (login refused, database missing, schema not migrated, a
  queue declared with other arguments): said plainly, once, in one line naming
  the setting; the worker shows itself not ready and keeps trying, in case an
  operator fixes it, for `give_up_after_seconds`; then it fails, so the process
  exits non-zero and its supervisor restarts it and alerts.
- Anything else is a bug: the worker fails at once.
"""

import logging
import time
from collections.abc import Callable

import psycopg

from worker.db.errors import translate as translate_database_error
from worker.errors import Misconfigured, OrderStatusError
from worker.kernel.hooks import Hooks
from worker.kernel.stopping import Stopped, Stopping
from worker.messaging.errors import DRIVER_ERRORS
from worker.messaging.errors import translate as translate_broker_error

log = logging.getLogger(__name__)


class GaveUp(Exception):
    """A fault that does not clear by itself outlasted the worker's patience."""


def run_sessions(
    stopping: Stopping,
    session: Callable[[], None],
    *,
    role: str,
    max_wait_seconds: float,
    give_up_after_seconds: float,
    hooks: Hooks,
) -> None:
    """Run `session` until a stop is requested, starting it again as the module says."""
    patience = _Patience(role, give_up_after_seconds)
    wait = 0.0
    while not stopping.requested():
        began = time.monotonic()
        try:
            session()
            return
        except Stopped:
            return
        except Exception as raised:
            error = _own_error(raised)
            if error is None:
                raise
            hooks.session_stopped(role, error)
            hooks.readiness_changed(role, False, str(error))
            if stopping.requested():
                return  # stopping interrupted a session; unacked messages go back
            patience.judge(error, raised)
            if time.monotonic() - began > max_wait_seconds:
                wait = 0.0  # a long good session: start the backoff afresh
            wait = min(max_wait_seconds, max(0.2, wait * 2))
            if not isinstance(error, Misconfigured):
                log.warning("%s; reconnecting in %.1fs", error, wait, extra={"worker": role})
        try:
            stopping.wait(wait)
        except Stopped:
            return


class _Patience:
    """How long a worker keeps trying through a fault that will not clear by itself."""

    def __init__(self, role: str, give_up_after_seconds: float) -> None:
        self._role = role
        self._give_up_after = give_up_after_seconds
        self._since: float | None = None
        self._said: str | None = None

    def judge(self, error: OrderStatusError, raised: BaseException) -> None:
        """Say a lasting fault once; raise GaveUp once it has lasted too long."""
        if not isinstance(error, Misconfigured):
            self._since, self._said = None, None
            return
        now = time.monotonic()
        self._since = self._since or now
        if str(error) != self._said:
            log.error(
                "%s cannot work: %s; giving up in %.0fs unless it is fixed",
                self._role,
                error,
                max(0.0, self._give_up_after - (now - self._since)),
                extra={"worker": self._role, "setting": error.setting},
            )
            self._said = str(error)
        if now - self._since >= self._give_up_after:
            raise GaveUp(f"{self._role} gave up: {error}") from raised


def _own_error(error: BaseException) -> OrderStatusError | None:
    """The project's own error for `error`; None for a bug.

    Adapters translate driver errors at their boundary; this catches what
    slipped through one, so a lost connection is never mistaken for a bug.
    """
    if isinstance(error, OrderStatusError):
        return error
    if isinstance(error, psycopg.Error):
        return translate_database_error(error)
    if isinstance(error, DRIVER_ERRORS):
        return translate_broker_error(error)
    return None
