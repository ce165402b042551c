"""What the store keeps of a dead-lettered message, and what a replay sends again."""

import base64
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from worker.dead_letter_views import DeadLetterDetail
from worker.messaging.amqp_json import from_json, to_json
from worker.messaging.dead_letter_record import describe, undescribed
from worker.messaging.replay import REPLAYED_FROM_HEADER, replay_of
from worker.messaging.topology import Topology

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
BODY = b'{"order_number": "SO-1", "command_id": "x"}'


def worker_dead_letter(**headers: Any) -> dict[str, Any]:
    return {
        "content_type": "application/json",
        "message_id": "m-1",
        "correlation_id": "c-1",
        "type": "ChangeOrderStatus",
        "delivery_mode": 2,
        "application_headers": {
            "x-dead-letter-reason": "retries_exhausted",
            "x-dead-letter-detail": "failed 6 times",
            "x-original-exchange": "orders.commands",
            "x-original-routing-key": "order.status.change",
            "x-source-queue": "orders.status-worker",
            "x-dead-lettered-at": "2026-11-27T07:59:00+00:00",
            "x-first-failed-at": "2026-11-27T07:46:00+00:00",
            "x-retry-attempt": 6,
            "tenant": "acme",
            **headers,
        },
    }


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        7,
        1.5,
        "文本",
        "nul\x00inside",
        b"\x00\xff",
        Decimal("1.50"),
        datetime(2026, 11, 27, 8, 0),
        {"nested": [1, b"x", {"deep": datetime(2026, 1, 1, tzinfo=UTC)}]},
    ],
)
def test_amqp_values_survive_json(value: Any) -> None:
    assert from_json(to_json(value)) == value


def test_json_forms_hold_no_nul_character() -> None:
    assert "\x00" not in str(to_json({"a": "x\x00y", "b": b"\x00"}))


def test_a_message_the_worker_dead_lettered_is_described_by_its_headers() -> None:
    record = describe(
        BODY,
        "orders.dead-letter",
        "order.status.change",
        worker_dead_letter(),
        delivery_limit=20,
        now=NOW,
    )
    assert (record.reason, record.detail, record.source_queue) == (
        "retries_exhausted",
        "failed 6 times",
        "orders.status-worker",
    )
    assert (record.original_exchange, record.original_routing_key) == (
        "orders.commands",
        "order.status.change",
    )
    assert (record.message_id, record.correlation_id, record.message_type) == (
        "m-1",
        "c-1",
        "ChangeOrderStatus",
    )
    assert record.order_number == "SO-1"
    assert record.attempts == 6
    assert record.first_failed_at == datetime(2026, 11, 27, 7, 46, tzinfo=UTC)
    assert record.last_failed_at == datetime(2026, 11, 27, 7, 59, tzinfo=UTC)
    assert "application_headers" not in record.properties
    assert record.headers["tenant"] == "acme"
    assert record.body == BODY


def test_a_message_dropped_by_the_delivery_limit_gets_the_broker_s_reason() -> None:
    died = datetime(2026, 11, 27, 7, 30)  # the broker's timestamps carry no zone; they are UTC
    properties = {
        "message_id": "m-2",
        "application_headers": {
            "x-death": [
                {
                    "count": 1,
                    "reason": "delivery_limit",
                    "queue": "orders.status-worker",
                    "exchange": "orders.commands",
                    "routing-keys": ["order.create"],
                    "time": died,
                },
                {"count": 2, "reason": "expired", "queue": "orders.status-worker.retry.1s"},
            ],
            "x-first-death-reason": "expired",
        },
    }
    record = describe(
        BODY, "orders.dead-letter", "whatever", properties, delivery_limit=20, now=NOW
    )
    assert record.reason == "delivery_limit"
    assert record.detail is None
    assert record.source_queue == "orders.status-worker"
    assert (record.original_exchange, record.original_routing_key) == (
        "orders.commands",
        "order.create",
    )
    assert record.attempts == 21
    assert record.first_failed_at == record.last_failed_at == died.replace(tzinfo=UTC)


def test_a_message_with_no_reason_at_all_is_still_stored() -> None:
    record = describe(b"\xff", "orders.dead-letter", "rk", {}, delivery_limit=20, now=NOW)
    assert (record.reason, record.attempts, record.order_number) == ("unknown", 0, None)
    assert (record.original_exchange, record.original_routing_key) == ("orders.dead-letter", "rk")
    assert record.first_failed_at == record.last_failed_at == NOW


@pytest.mark.parametrize("count", [float("inf"), float("nan"), -1, 10**40, "9" * 5_000])
def test_an_attempt_count_no_one_should_send_does_not_stop_the_description(
    count: object,
) -> None:
    record = describe(
        BODY, "dl", "rk", worker_dead_letter(**{"x-retry-attempt": count}), delivery_limit=20
    )
    assert record.reason == "retries_exhausted"
    assert 0 <= record.attempts <= 2**31 - 1


def test_a_message_that_cannot_be_described_keeps_its_body_and_one_fingerprint() -> None:
    error = ValueError("odd header")
    first = undescribed(BODY, "orders.dead-letter", "order.create", error, now=NOW)
    again = undescribed(BODY, "orders.dead-letter", "order.create", error)
    assert first.fingerprint == again.fingerprint
    assert (first.body, first.reason, first.original_routing_key) == (
        BODY,
        "unknown",
        "order.create",
    )
    assert first.detail == "not described: ValueError: odd header"
    assert first.headers == {"x-store-error": first.detail}


def test_a_redelivery_from_the_dead_letter_queue_has_the_same_fingerprint() -> None:
    first = describe(BODY, "dl", "rk", worker_dead_letter(), delivery_limit=20, now=NOW)
    again = describe(
        BODY, "dl", "rk", worker_dead_letter(**{"x-delivery-count": 1}), delivery_limit=20
    )
    other = describe(BODY + b" ", "dl", "rk", worker_dead_letter(), delivery_limit=20, now=NOW)
    assert first.fingerprint == again.fingerprint
    assert other.fingerprint != first.fingerprint


def test_an_order_number_longer_than_the_contract_allows_is_not_kept() -> None:
    """A 2 MB "order number" would not fit the column's index and stall the store."""
    huge = b'{"order_number": "' + b"x" * 2_000_000 + b'"}'
    longest = b'{"order_number": "' + b"x" * 64 + b'"}'
    assert describe(huge, "dl", "rk", worker_dead_letter(), delivery_limit=20).order_number is None
    kept = describe(longest, "dl", "rk", worker_dead_letter(), delivery_limit=20)
    assert kept.order_number == "x" * 64


def test_a_body_nested_deeper_than_python_parses_is_still_described() -> None:
    deep = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    record = describe(deep, "dl", "rk", worker_dead_letter(), delivery_limit=20)
    assert (record.reason, record.message_id, record.order_number) == (
        "retries_exhausted",
        "m-1",
        None,
    )


def test_a_second_copy_of_one_failure_made_after_a_crash_has_the_same_fingerprint() -> None:
    """Killed after the copy's confirm, before the ack: the worker copies the original again."""
    first = describe(BODY, "dl", "rk", worker_dead_letter(), delivery_limit=20, now=NOW)
    later = worker_dead_letter(**{"x-dead-lettered-at": "2026-11-27T07:59:03+00:00"})
    again = describe(BODY, "dl", "rk", later, delivery_limit=20, now=NOW)
    other_reason = describe(
        BODY, "dl", "rk", worker_dead_letter(**{"x-dead-letter-reason": "apply_failed"}),
        delivery_limit=20, now=NOW,
    )  # fmt: skip
    assert again.fingerprint == first.fingerprint
    assert again.last_failed_at != first.last_failed_at
    assert other_reason.fingerprint != first.fingerprint


def test_a_replay_sends_the_producer_s_message_without_what_the_failure_path_added() -> None:
    record = describe(
        BODY,
        "orders.dead-letter",
        "order.status.change",
        {
            **worker_dead_letter(**{"x-death": [{"reason": "expired"}], "retry-queue": "q"}),
            "expiration": "60000",
            "timestamp": 1795758000,  # py-amqp reads and writes it as seconds
        },
        delivery_limit=20,
        now=NOW,
    )
    detail = DeadLetterDetail(
        id=42,
        reason=record.reason,
        source_queue=record.source_queue,
        routing_key=record.original_routing_key,
        message_id=record.message_id,
        order_number=record.order_number,
        attempts=record.attempts,
        first_failed_at=record.first_failed_at,
        last_failed_at=record.last_failed_at,
        state="dead",
        detail=record.detail,
        exchange=record.original_exchange,
        correlation_id=record.correlation_id,
        message_type=record.message_type,
        properties=record.properties,
        headers=record.headers,
        body_base64=base64.b64encode(BODY).decode(),
        body_text=BODY.decode(),
        ingested_at=NOW,
        replay_count=0,
        replayed_at=None,
        replayed_by=None,
        purged_at=None,
        purged_by=None,
    )
    replay = replay_of(detail, Topology("orders"))
    assert (replay.queue, replay.exchange, replay.routing_key, replay.body) == (
        "orders.status-worker",
        "orders.retry-return",
        "order.status.change",
        BODY,
    )
    assert replay.headers == {
        "tenant": "acme",
        REPLAYED_FROM_HEADER: 42,
        "retry-queue": "orders.status-worker",
        "x-original-exchange": "orders.commands",
        "x-original-routing-key": "order.status.change",
    }
    assert replay.properties == {
        "message_id": "m-1",
        "correlation_id": "c-1",
        "type": "ChangeOrderStatus",
        "timestamp": 1795758000,
    }
    assert replay.content_type == "application/json"
    assert replay.envelope().type_name == "ChangeOrderStatus"


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        (42, 42),
        ("42", 42),
        (b"42", 42),
        (None, None),
        (0, None),
        (-3, None),
        (True, None),
        (2**63, None),
        ("42; DROP", None),
        ("４２", None),  # noqa: RUF001 - digits, but not ASCII ones
        (1.0, None),
    ],
)
def test_the_entry_a_message_was_replayed_from_is_read_only_from_a_plausible_id(
    value: Any, kept: int | None
) -> None:
    record = describe(
        BODY,
        "orders.dead-letter",
        "order.status.change",
        worker_dead_letter(**{REPLAYED_FROM_HEADER: value}),
        delivery_limit=20,
        now=NOW,
    )
    assert record.replayed_from == kept
