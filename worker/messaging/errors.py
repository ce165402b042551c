"""Broker errors translated into the project's own types (see `worker.errors`).

py-amqp, kombu and pika each raise their own exceptions; above this boundary
only `Unavailable` (it clears by itself: refused, reset, the broker restarting,
a channel the broker closed) and `Misconfigured` (it will not: login refused,
a missing virtual host, a queue declared with other arguments) are seen.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import amqp.exceptions
import kombu.exceptions
import pika.exceptions

from worker.errors import BROKER_SETTING, Misconfigured, OrderStatusError, Unavailable
from worker.redaction import redact

_LASTING_AMQP_ERRORS: tuple[type[BaseException], ...] = (
    amqp.exceptions.AccessRefused,
    amqp.exceptions.NotAllowed,
    pika.exceptions.ProbableAuthenticationError,
    pika.exceptions.ProbableAccessDeniedError,
    pika.exceptions.AuthenticationError,
)

# What a TLS handshake says when the setup is wrong: the certificate (chain or
# name) was refused, or the port does not speak TLS. pika wraps the SSL error.
_TLS_SETUP_FAULTS = ("CERTIFICATE_VERIFY_FAILED", "WRONG_VERSION_NUMBER")

DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    amqp.exceptions.AMQPError,
    kombu.exceptions.KombuError,
    pika.exceptions.AMQPError,
)
"""Everything the broker clients raise for a broker that failed us."""


def translate(error: BaseException) -> OrderStatusError:
    """The project's own error for a broker client's error (or one of ours, unchanged)."""
    if isinstance(error, OrderStatusError):
        return error
    cause = error.__cause__ if isinstance(error, kombu.exceptions.OperationalError) else None
    if isinstance(error, _LASTING_AMQP_ERRORS) or isinstance(cause, _LASTING_AMQP_ERRORS):
        return Misconfigured(BROKER_SETTING, f"RabbitMQ refused: {_text(cause or error)}")
    if any(marker in _text(error) for marker in _TLS_SETUP_FAULTS):
        return Misconfigured(BROKER_SETTING, f"TLS to RabbitMQ failed: {_text(cause or error)}")
    return Unavailable("RabbitMQ", _text(error))


def _text(error: BaseException) -> str:
    text = redact(" ".join(str(error).split()))
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@contextmanager
def translated(*, timeout_is_failure: bool = False) -> Iterator[None]:
    """Raise the project's own error type for any broker client error inside the block.

    A read that times out (`TimeoutError`) is how the clients say "nothing
    arrived", so it passes through unless `timeout_is_failure` (connecting).
    """
    try:
        yield
    except TimeoutError as error:
        if timeout_is_failure:
            raise Unavailable("RabbitMQ", f"no answer in time: {error}") from error
        raise
    except DRIVER_ERRORS as error:
        raise translate(error) from error
