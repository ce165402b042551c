"""Decoding events for the rules worker: what it reacts to, ignores, or dead-letters."""

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from contracts import OrderCreated, OrderStatusChanged, OrderStatusChangeRejected, RejectionReason
from worker.messaging.decoding import Envelope
from worker.messaging.event_decoding import Ignored, decode_event
from worker.messaging.poison import DeadLetterReason, Poison

WANTED = (OrderCreated, OrderStatusChanged)


def rejected_body() -> bytes:
    return (
        OrderStatusChangeRejected(
            event_id=uuid4(),
            command_id=uuid4(),
            command_type="ChangeOrderStatus",
            order_number="SO-1",
            reason=RejectionReason.UNKNOWN_ORDER,
            detail="no order SO-1",
            rejected_at=datetime.now(UTC),
        )
        .model_dump_json()
        .encode()
    )


def test_an_event_of_another_type_is_ignored_by_type_or_routing_key() -> None:
    by_type = Envelope(
        rejected_body(), "order.status.rejected", type_name="OrderStatusChangeRejected"
    )
    by_key = Envelope(rejected_body(), "order.status.rejected")
    assert decode_event(by_type, WANTED) == Ignored("OrderStatusChangeRejected")
    assert decode_event(by_key, WANTED) == Ignored("OrderStatusChangeRejected")


@pytest.mark.parametrize(
    ("envelope", "reason"),
    [
        (Envelope(b"{", "order.created", "application/json"), DeadLetterReason.MALFORMED_JSON),
        (
            Envelope(b"{}", "order.created", type_name="OrderCreated"),
            DeadLetterReason.SCHEMA_VIOLATION,
        ),
        (Envelope(b"{}", "order.created", type_name="Nope"), DeadLetterReason.UNKNOWN_TYPE),
        (
            Envelope(b"{}", "order.created", "application/x-pickle"),
            DeadLetterReason.UNSUPPORTED_CONTENT_TYPE,
        ),
        (
            Envelope(b"{}", "order.created", content_encoding="gzip"),
            DeadLetterReason.UNSUPPORTED_CONTENT_TYPE,
        ),
    ],
)
def test_what_is_not_an_event_is_poison_with_its_reason(
    envelope: Envelope, reason: DeadLetterReason
) -> None:
    decoded = decode_event(envelope, WANTED)
    assert isinstance(decoded, Poison)
    assert decoded.reason == reason
