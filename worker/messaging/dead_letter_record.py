"""What the dead-letter store keeps of a message, read from its headers.

A message the worker dead-lettered itself carries `x-dead-letter-reason` and
the other headers of `worker.messaging.dead_letter`. One the broker moved (its
delivery limit reached, say) carries only the broker's `x-death`; its reason
is then the broker's, such as `delivery_limit`.
"""

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker.messaging.amqp_json import to_json
from worker.messaging.failure_headers import (
    ATTEMPT_HEADER,
    DEAD_LETTERED_AT_HEADER,
    DETAIL_HEADER,
    FIRST_FAILED_HEADER,
    ORIGINAL_EXCHANGE_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER,
    REASON_HEADER,
    SOURCE_QUEUE_HEADER,
    failed_attempts,
)
from worker.messaging.replay import REPLAYED_FROM_HEADER

UNKNOWN_REASON = "unknown"
MAX_ATTEMPTS = 2**31 - 1
MAX_ENTRY_ID = 2**63 - 1
"""The largest id the store can give an entry (a bigint)."""
"""The column is an integer; a count sent by a producer is no reason to refuse the row."""
MAX_ORDER_NUMBER_LENGTH = 64
"""The contract's limit (`contracts.base.OrderNumber`)."""
REDELIVERY_HEADERS = ("x-delivery-count",)
"""Headers the dead-letter queue itself changes when it delivers a message again."""
COPY_TIME_HEADERS = (DEAD_LETTERED_AT_HEADER,)
"""When a worker made its dead-letter copy: a worker killed after the copy's confirm and
before its ack copies the redelivered original again a moment later, and the two copies
are one failure."""
UNHASHED_HEADERS = frozenset({*REDELIVERY_HEADERS, *COPY_TIME_HEADERS})


@dataclass(frozen=True)
class DeadLetterRecord:
    """One row of the dead-letter store, before it has an id."""

    fingerprint: str
    reason: str
    detail: str | None
    source_queue: str | None
    original_exchange: str
    original_routing_key: str
    message_id: str | None
    correlation_id: str | None
    message_type: str | None
    order_number: str | None
    properties: dict[str, Any]
    headers: dict[str, Any]
    body: bytes
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime
    replayed_from: int | None = None
    """The entry this message was replayed from, when it failed again after a replay."""


def describe(
    body: bytes,
    exchange: str,
    routing_key: str,
    properties: Mapping[str, Any],
    *,
    delivery_limit: int,
    now: datetime | None = None,
) -> DeadLetterRecord:
    """Describe a message taken from the dead-letter queue; `properties` include its headers.

    `delivery_limit` is the queues' `x-delivery-limit`: a message the broker
    dropped for it was delivered once more than that.
    """
    now = now or datetime.now(UTC)
    kept = {name: value for name, value in properties.items() if name != "application_headers"}
    headers = dict(properties.get("application_headers") or {})
    death = _latest_death(headers)
    reason = _text(headers.get(REASON_HEADER)) or _text(death.get("reason")) or UNKNOWN_REASON
    last_failed = _moment(headers.get(DEAD_LETTERED_AT_HEADER)) or _moment(death.get("time")) or now
    first_failed = _moment(headers.get(FIRST_FAILED_HEADER)) or last_failed
    death_keys = death.get("routing-keys") or []
    json_properties = to_json(kept)
    json_headers = to_json(headers)
    return DeadLetterRecord(
        fingerprint=_fingerprint(body, exchange, routing_key, json_properties, json_headers),
        reason=reason,
        detail=_text(headers.get(DETAIL_HEADER)),
        source_queue=_text(headers.get(SOURCE_QUEUE_HEADER)) or _text(death.get("queue")),
        original_exchange=_text(headers.get(ORIGINAL_EXCHANGE_HEADER))
        or _text(death.get("exchange"))
        or exchange,
        original_routing_key=_text(headers.get(ORIGINAL_ROUTING_KEY_HEADER))
        or (_text(death_keys[0]) if death_keys else None)
        or routing_key,
        message_id=_text(kept.get("message_id")),
        correlation_id=_text(kept.get("correlation_id")),
        message_type=_text(kept.get("type")),
        order_number=_order_number(body),
        properties=json_properties,
        headers=json_headers,
        body=body,
        attempts=min(_attempts(headers, death, delivery_limit), MAX_ATTEMPTS),
        first_failed_at=min(first_failed, last_failed),
        last_failed_at=last_failed,
        replayed_from=_entry_id(headers.get(REPLAYED_FROM_HEADER)),
    )


def undescribed(
    body: bytes,
    exchange: str,
    routing_key: str,
    error: Exception,
    *,
    now: datetime | None = None,
) -> DeadLetterRecord:
    """What surely can be kept of a message `describe` failed on: the body and where it was.

    Its fingerprint covers only the body and the framing, so a redelivery of
    the same message is still stored once.
    """
    now = now or datetime.now(UTC)
    note = f"not described: {type(error).__name__}: {error}".replace("\x00", "")
    return DeadLetterRecord(
        fingerprint=_fingerprint(body, exchange, routing_key, None, {"x-store-error": True}),
        reason=UNKNOWN_REASON,
        detail=note[:2000],
        source_queue=None,
        original_exchange=exchange,
        original_routing_key=routing_key.replace("\x00", "\ufffd"),
        message_id=None,
        correlation_id=None,
        message_type=None,
        order_number=None,
        properties={},
        headers={"x-store-error": note},
        body=body,
        attempts=0,
        first_failed_at=now,
        last_failed_at=now,
    )


def _latest_death(headers: Mapping[str, Any]) -> Mapping[str, Any]:
    """The broker's most recent dead-lettering of the message (x-death lists it first)."""
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        return deaths[0]
    return {}


def _attempts(headers: Mapping[str, Any], death: Mapping[str, Any], delivery_limit: int) -> int:
    if ATTEMPT_HEADER in headers:
        return failed_attempts(headers)
    if REASON_HEADER in headers:
        return 1  # the worker gave up on the first failure
    if death.get("reason") == "delivery_limit":
        return delivery_limit + 1
    return 0


def _fingerprint(
    body: bytes, exchange: str, routing_key: str, properties: Any, headers: dict[str, Any]
) -> str:
    stable = {name: value for name, value in headers.items() if name not in UNHASHED_HEADERS}
    framing = json.dumps(
        [exchange, routing_key, properties, stable], sort_keys=True, ensure_ascii=True
    )
    return hashlib.sha256(framing.encode() + b"\x00" + body).hexdigest()


def _order_number(body: bytes) -> str | None:
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # nested deeper than Python goes
        return None
    number = decoded.get("order_number") if isinstance(decoded, dict) else None
    if not isinstance(number, str) or "\x00" in number:
        return None
    # Longer is no order number the contract allows, and a huge one would not fit the
    # column's index: the insert would fail on every try and stall the whole store.
    return number if len(number) <= MAX_ORDER_NUMBER_LENGTH else None


def _entry_id(value: Any) -> int | None:
    """A store id from a header, or None for anything that cannot be one."""
    if isinstance(value, bytes | str):
        value = _text(value)
        value = int(value) if value and value.isascii() and value.isdigit() else None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 < value <= MAX_ENTRY_ID else None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if value is None or value == "":
        return None
    return str(value).replace("\x00", "\ufffd")


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str | bytes):
        try:
            parsed = datetime.fromisoformat(_text(value) or "")
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None
