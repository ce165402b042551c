"""Structured logs: every record carries its context fields, as text or JSON lines."""

import logging
import sys
from collections.abc import Iterable
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from worker.redaction import redact

STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class ContextTextFormatter(logging.Formatter):
    """`time level logger message key=value ...`, for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = {
            key: value
            for key, value in record.__dict__.items()
            if key not in STANDARD_ATTRIBUTES and value is not None
        }
        if context:
            line += " " + " ".join(f"{key}={_quote(value)}" for key, value in context.items())
        return line


def _quote(value: Any) -> str:
    text = str(value)
    return repr(text) if (" " in text or not text) else text


class RedactingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes records with every password masked, the traceback's included."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__(sys.stderr)
        self._secrets = tuple(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self._secrets)


def configure_logging(level: str, fmt: str, secrets: Iterable[str] = ()) -> None:
    """Send the service's logs to stderr, in `fmt` ("text" or "json"), `secrets` masked."""
    handler = RedactingHandler(secrets)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(ContextTextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The client libraries are chatty at INFO about things we log ourselves.
    for noisy in ("amqp", "kombu", "pika", "yoyo"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
