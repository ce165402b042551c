"""A worker's sessions: start again after a lost connection, give up on what will not clear.

- `Unavailable` (refused, reset, a server restarting): reconnect with capped
  backoff, for as long as it takes; a session that became ready starts the
  backoff afresh, so a new outage after a good day is retried quickly.
- `Misconfigured` (login refused, database missing, schema not migrated, a
  queue declared with other arguments): judged by the worker's `Patience`:
  said once, naming the setting; `GaveUp` once it has lasted too long.
- Anything else is a bug: the worker fails at once.

A stop request ends a reconnection's wait at once: no work is held there.
"""

import logging
from collections.abc import Callable

import psycopg

from worker.db.errors import translate as translate_database_error
from worker.errors import Misconfigured, OrderStatusError
from worker.kernel.hooks import Hooks
from worker.kernel.patience import Patience
from worker.kernel.stopping import Stopped, Stopping
from worker.messaging.errors import DRIVER_ERRORS
from worker.messaging.errors import translate as translate_broker_error

log = logging.getLogger(__name__)

Ready = Callable[[], None]
"""What a session calls once it works (consuming, or publishing): the worker is ready."""


def run_sessions(
    stopping: Stopping,
    session: Callable[[Ready], None],
    *,
    role: str,
    max_wait_seconds: float,
    patience: Patience,
    hooks: Hooks,
) -> None:
    """Run `session` until a stop is requested, starting it again as the module says."""
    wait = 0.0

    def ready() -> None:
        nonlocal wait
        wait = 0.0
        patience.recovered()
        hooks.session_started(role)
        hooks.readiness_changed(role, True, None)

    while not stopping.requested():
        try:
            session(ready)
            return
        except Stopped:
            return
        except Exception as raised:
            error = _own_error(raised)
            if error is None:
                raise
            hooks.session_stopped(role, error)
            if stopping.requested():
                return  # stopping interrupted a session; unacked messages go back
            hooks.readiness_changed(role, False, str(error))
            wait = min(max_wait_seconds, max(0.2, wait * 2))
            if isinstance(error, Misconfigured):
                patience.judge(error)  # says it once; raises GaveUp when patience runs out
            else:
                log.warning("%s; reconnecting in %.1fs", error, wait, extra={"worker": role})
        try:
            stopping.pause(wait)
        except Stopped:
            return


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
