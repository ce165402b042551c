"""How the workers survive failures: one retry policy, and sessions that start again.

Retrying uses tenacity: exponential backoff with jitter, capped, until the
worker is asked to stop. A worker's session (its connections and its loop)
starts again after every failure that reconnecting can cure; any other failure
ends the worker, so its supervisor sees it.
"""

import logging
import threading
import time
from collections.abc import Callable

import psycopg
from tenacity import Retrying, before_sleep_log, retry_if_exception, wait_exponential_jitter

from worker.db.errors import is_transient_database_error
from worker.messaging.broker import BROKER_CONNECTION_ERRORS

KEEPALIVE_SECONDS = 1.0


class Stopped(Exception):
    """The worker was asked to stop while it waited to try again."""


def is_connection_failure(error: BaseException) -> bool:
    """A lost or refused connection to PostgreSQL or RabbitMQ."""
    return isinstance(error, (*BROKER_CONNECTION_ERRORS, psycopg.OperationalError))


def is_recoverable(error: BaseException) -> bool:
    """A failure that reconnecting, after a pause, can cure."""
    return is_connection_failure(error) or is_transient_database_error(error)


def retry_until_stopped(
    stop: threading.Event,
    is_retryable: Callable[[BaseException], bool],
    max_wait_seconds: float,
    log: logging.Logger,
    keepalive: Callable[[], None] | None = None,
) -> Retrying:
    """Retry while `is_retryable` says so, backing off up to `max_wait_seconds`.

    A stop request ends the wait at once and raises Stopped instead of trying
    again. `keepalive` runs about once a second while waiting, so a broker
    connection held meanwhile keeps its heartbeats.
    """
    return Retrying(
        retry=retry_if_exception(is_retryable),
        wait=wait_exponential_jitter(multiplier=0.1, max=max_wait_seconds, jitter=0.2),
        sleep=lambda seconds: _wait_or_stop(stop, seconds, keepalive),
        before_sleep=before_sleep_log(log, logging.WARNING, exc_info=False),
        reraise=True,
    )


def run_sessions(
    stop: threading.Event,
    session: Callable[[], None],
    max_wait_seconds: float,
    log: logging.Logger,
) -> None:
    """Run `session` until `stop` is set, starting it again after recoverable failures.

    While failures follow each other, the waits between them grow; a session
    that lasted longer than the longest wait starts the backoff afresh, so a
    new outage after a good day is retried quickly. Returns once stopped.
    """

    def attempt() -> bool:
        began = time.monotonic()
        try:
            session()
        except Exception as error:
            lasted = time.monotonic() - began
            if is_recoverable(error) and lasted > max_wait_seconds and not stop.is_set():
                log.warning("connection lost; reconnecting", extra={"error": repr(error)})
                return False
            raise
        return True

    while not stop.is_set():
        try:
            if retry_until_stopped(stop, is_recoverable, max_wait_seconds, log)(attempt):
                return
        except Stopped:
            return
        except Exception as error:
            if stop.is_set() and is_recoverable(error):
                return  # stopping interrupted a session; unacked messages go back
            raise


def _wait_or_stop(
    stop: threading.Event, seconds: float, keepalive: Callable[[], None] | None
) -> None:
    deadline = time.monotonic() + seconds
    while True:
        if stop.is_set():
            raise Stopped
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        stop.wait(min(remaining, KEEPALIVE_SECONDS))
        if keepalive is not None and not stop.is_set():
            keepalive()
