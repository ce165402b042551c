"""A stop request, and the grace period a worker has to finish the batch in hand.

On SIGTERM or SIGINT a worker stops taking deliveries at once, but finishes
what it holds: it commits, confirms and acks. Waits for a server to come back
go on during the grace period; once it is over they give up (`Stopped`), and
whatever was not acked goes back to its queue.
"""

import threading
import time
from collections.abc import Callable

KEEPALIVE_SECONDS = 1.0


class Stopped(Exception):
    """Stopping, and the grace period is over: give up what is in hand."""


class Stopping:
    """Wraps the process's stop event with the grace period that follows it."""

    def __init__(self, event: threading.Event, grace_seconds: float) -> None:
        self.event = event
        self._grace_seconds = grace_seconds
        self._first_seen: float | None = None

    def requested(self) -> bool:
        """Whether a stop was asked for: take no new work."""
        if not self.event.is_set():
            return False
        if self._first_seen is None:
            self._first_seen = time.monotonic()
        return True

    def grace_over(self) -> bool:
        """Whether a stop was asked for long enough ago that work in hand must be given up."""
        if not self.requested():
            return False
        assert self._first_seen is not None  # noqa: S101 - requested() sets it
        return time.monotonic() - self._first_seen >= self._grace_seconds

    def wait(self, seconds: float, keepalive: Callable[[], None] | None = None) -> None:
        """Sleep `seconds`, serving `keepalive` about once a second; raise Stopped if it is time.

        Once a stop is requested the wait still runs, so work in hand can be
        finished, until the grace period is over.
        """
        deadline = time.monotonic() + seconds
        while True:
            if self.grace_over():
                raise Stopped
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            step = min(remaining, KEEPALIVE_SECONDS)
            if self.event.is_set():
                time.sleep(step)  # the event no longer wakes us: just wait
            else:
                self.event.wait(step)
            if keepalive is not None:
                keepalive()

    def pause(self, seconds: float, keepalive: Callable[[], None] | None = None) -> None:
        """Sleep `seconds` like `wait`, but raise Stopped as soon as a stop is requested.

        For waits that hold no work (a reconnection's backoff), so a stop is prompt.
        """
        deadline = time.monotonic() + seconds
        while not self.requested():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.event.wait(min(remaining, KEEPALIVE_SECONDS))
            if keepalive is not None and not self.event.is_set():
                keepalive()
        raise Stopped
