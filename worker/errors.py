"""The project's own error types: what a failure means, whichever driver raised it.

Driver errors (psycopg, py-amqp, kombu, pika) are translated into these at the
adapter boundary (`worker.db.errors.translated`, `worker.messaging.errors.translated`),
so workers, services and the command line decide what to do from the type
alone and never import a driver to find out:

- `Unavailable`: a server cannot be reached or is not serving now (connection
  refused or lost, a restart, a read-only server during a failover). It clears
  by itself: wait and try again, holding the work.
- `Misconfigured`: it will not clear by itself (login refused, database missing,
  schema not migrated, a queue declared with other arguments, an invalid URL).
  It names the setting to fix; a worker reports it, shows itself not ready,
  and exits after a bounded time so that its supervisor restarts and alerts.
- `Contention`: a lock timeout, deadlock, serialization failure or statement
  timeout around these rows; other work may go through. Retried a few times,
  then the work waits in the retry tiers.
- `Refused`: the database refused what was asked for (a constraint, a value out
  of range): the fault of the data, not of the surroundings.
"""


class OrderStatusError(Exception):
    """Base of every error the project raises on purpose."""


class Unavailable(OrderStatusError):
    """A server cannot be reached or is not serving right now; it clears by itself."""

    def __init__(self, server: str, detail: str) -> None:
        super().__init__(f"{server} is unavailable: {detail}")
        self.server = server
        self.detail = detail


class Misconfigured(OrderStatusError):
    """A fault that will not clear by itself; `setting` names what to fix."""

    def __init__(self, setting: str, detail: str) -> None:
        super().__init__(f"{detail} (check {setting})")
        self.setting = setting
        self.detail = detail


class Contention(OrderStatusError):
    """A lock, deadlock, serialization failure or statement timeout around these rows."""

    def __init__(self, detail: str, kind: str = "Contention") -> None:
        super().__init__(detail)
        self.kind = kind
        """What the database reported, e.g. `LockNotAvailable` or `DeadlockDetected`."""


class Refused(OrderStatusError):
    """The database refused what was asked of it for the data's sake, not the server's."""


class ConcurrentWrite(Unavailable):
    """Another transaction claimed a command id or order number first; apply again."""

    def __init__(self, detail: str) -> None:
        super().__init__("PostgreSQL", detail)


DATABASE_SETTING = "ORDERS_DATABASE_URL"
BROKER_SETTING = "ORDERS_AMQP_URL"
