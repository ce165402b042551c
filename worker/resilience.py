"""The one retry policy of the workers: exponential backoff with jitter until stopped."""

import logging
import threading
import time
from collections.abc import Callable

import psycopg
from tenacity import Retrying, before_sleep_log, retry_if_exception, wait_exponential_jitter

from worker.messaging.broker import BROKER_CONNECTION_ERRORS


def is_connection_failure(error: BaseException) -> bool:
    """A lost or refused connection to PostgreSQL or RabbitMQ: reconnect and carry on."""
    return isinstance(error, (*BROKER_CONNECTION_ERRORS, psycopg.OperationalError))


KEEPALIVE_SECONDS = 1.0


def retry_until_stopped(
    stop: threading.Event,
    is_retryable: Callable[[BaseException], bool],
    max_wait_seconds: float,
    log: logging.Logger,
    keepalive: Callable[[], None] | None = None,
) -> Retrying:
    """Retry while `is_retryable` says so, backing off up to `max_wait_seconds`.

    Gives up (re-raising the last error) only once `stop` is set, and wakes
    from a backoff as soon as it is. `keepalive` runs about once a second while
    waiting, so a broker connection held meanwhile keeps its heartbeats.
    """
    return Retrying(
        retry=retry_if_exception(is_retryable),
        wait=wait_exponential_jitter(multiplier=0.1, max=max_wait_seconds, jitter=0.2),
        stop=lambda _state: stop.is_set(),
        sleep=lambda seconds: _wait_or_stop(stop, seconds, keepalive),
        before_sleep=before_sleep_log(log, logging.WARNING, exc_info=False),
        reraise=True,
    )


def _wait_or_stop(
    stop: threading.Event, seconds: float, keepalive: Callable[[], None] | None
) -> None:
    deadline = time.monotonic() + seconds
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        stop.wait(min(remaining, KEEPALIVE_SECONDS))
        if keepalive is not None:
            keepalive()
