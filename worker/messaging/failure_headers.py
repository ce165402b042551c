"""The headers the failure path writes on a message, and how they are read back.

A message that failed is copied, with these headers, to a retry tier or to the
dead-letter exchange (`worker.kernel.routing`); the dead-letter store
(`worker.messaging.dead_letter_record`) and a replay (`worker.messaging.replay`)
read them back. Only a message that came back from a retry tier may carry them
in: from anyone else they are forgeries, and a replay would trust them.
"""

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from worker.messaging.topology import RETRY_DELAY_HEADER, RETRY_QUEUE_HEADER

REASON_HEADER = "x-dead-letter-reason"
DETAIL_HEADER = "x-dead-letter-detail"
SOURCE_QUEUE_HEADER = "x-source-queue"
DEAD_LETTERED_AT_HEADER = "x-dead-lettered-at"
ORIGINAL_EXCHANGE_HEADER = "x-original-exchange"
ORIGINAL_ROUTING_KEY_HEADER = "x-original-routing-key"
MAX_DETAIL_LENGTH = 2000

ATTEMPT_HEADER = "x-retry-attempt"
"""How many times handling this message has failed for a passing reason."""
FIRST_FAILED_HEADER = "x-first-failed-at"
LAST_FAILURE_HEADER = "x-retry-last-failure"

FAILURE_PATH_HEADERS = (
    "x-dead-letter-",
    "x-original-",
    SOURCE_QUEUE_HEADER,
    DEAD_LETTERED_AT_HEADER,
    "x-death",
    "x-first-death-",
    "x-last-death-",
    "x-delivery-count",
    "x-retry-",
    "x-replayed-",
    FIRST_FAILED_HEADER,
    RETRY_QUEUE_HEADER,
    RETRY_DELAY_HEADER,
)
"""Headers the failure path (or the broker, dead-lettering) writes."""

BROKER_HEADERS = ("x-death", "x-first-death-", "x-last-death-", "x-delivery-count")
"""Headers the broker writes; a fresh copy starts without them."""

MAX_ATTEMPTS = 2**31 - 1
"""The most failures a count may claim; a producer's larger number is read as this."""


def is_failure_path_header(name: str) -> bool:
    return name.startswith(FAILURE_PATH_HEADERS)


def is_broker_header(name: str) -> bool:
    return name.startswith(BROKER_HEADERS)


def failed_attempts(headers: Mapping[str, Any] | None) -> int:
    """The failures counted in `headers` so far; never raises.

    The header arrives from anyone who can publish: a missing, negative,
    fractional, non-finite or unreadable count is zero, and one beyond
    `MAX_ATTEMPTS` is read as that.
    """
    count = _whole_number((headers or {}).get(ATTEMPT_HEADER))
    return 0 if count is None or count < 0 else min(count, MAX_ATTEMPTS)


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str):
        text = value.strip()
        # Bounded before int(): a long enough digit string makes int() raise.
        return int(text) if text.isascii() and text.isdigit() and len(text) <= 12 else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    return None
