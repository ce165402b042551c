"""Confirm accounting of ConfirmedPublisher, against a stand-in for a py-amqp channel.

The stand-in implements the part of py-amqp's Channel and Connection the
publisher uses (confirm_select, events, prepare_message, basic_publish,
drain_events) and lets the test play the broker's answers.
"""

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest

from worker.messaging.publisher import (
    ConfirmedPublisher,
    ConfirmTimeout,
    MessagesRefused,
    MessageUnroutable,
)


class BrokerStandIn:
    """A connection with one channel; `answers` are the frames the broker will send."""

    def __init__(self) -> None:
        self.events: dict[str, set[Callable[..., None]]] = defaultdict(set)
        self.published: list[dict[str, Any]] = []
        self.answers: list[tuple[str, tuple[Any, ...]]] = []

    def channel(self) -> "BrokerStandIn":
        return self

    def confirm_select(self) -> None:
        pass

    def prepare_message(self, body: bytes, **fields: Any) -> dict[str, Any]:
        return {"body": body, **fields}

    def basic_publish(self, message: dict[str, Any], **routing: Any) -> None:
        self.published.append({**message, **routing})

    def drain_events(self, timeout: float) -> None:
        if not self.answers:
            raise TimeoutError
        event, args = self.answers.pop(0)
        for callback in list(self.events[event]):
            callback(*args)


def publisher_with(answers: list[tuple[str, tuple[Any, ...]]], count: int) -> ConfirmedPublisher:
    broker = BrokerStandIn()
    publisher = ConfirmedPublisher(broker)
    tags = [publisher.publish(b"{}", exchange="x", routing_key="k") for _ in range(count)]
    assert tags == list(range(1, count + 1))
    broker.answers = answers
    return publisher


def test_one_multiple_ack_confirms_everything_before_it() -> None:
    publisher = publisher_with([("basic_ack", (3, True))], 3)
    assert publisher.wait_for_confirms(timeout=1) == []


def test_single_acks_in_any_order_confirm_each() -> None:
    answers = [("basic_ack", (2, False)), ("basic_ack", (1, False)), ("basic_ack", (3, False))]
    publisher_with(answers, 3).confirm_all(timeout=1)


def test_nacks_are_reported_by_tag_single_and_multiple() -> None:
    answers = [("basic_ack", (1, False)), ("basic_nack", (3, True)), ("basic_nack", (4, False))]
    publisher = publisher_with(answers, 4)
    assert publisher.wait_for_confirms(timeout=1) == [2, 3, 4]


def test_confirm_all_raises_on_a_refusal() -> None:
    with pytest.raises(MessagesRefused, match=r"\[2\]"):
        publisher_with([("basic_ack", (1, False)), ("basic_nack", (2, False))], 2).confirm_all(1)


def test_a_returned_mandatory_message_fails_the_wait_even_though_it_was_acked() -> None:
    returned = (RuntimeError("NO_ROUTE"), "orders.dead-letter", "order.create", None)
    answers = [("basic_return", returned), ("basic_ack", (1, False))]
    with pytest.raises(MessageUnroutable, match="NO_ROUTE"):
        publisher_with(answers, 1).wait_for_confirms(timeout=1)


def test_missing_answers_time_out() -> None:
    with pytest.raises(ConfirmTimeout, match="1 messages unconfirmed"):
        publisher_with([("basic_ack", (1, False))], 2).wait_for_confirms(timeout=0.05)


def test_priority_travels_as_its_own_field_and_persistence_is_the_default() -> None:
    broker = BrokerStandIn()
    ConfirmedPublisher(broker).publish(
        b"{}", exchange="x", routing_key="k", properties={"priority": 5, "message_id": "m"}
    )
    [message] = broker.published
    assert message["priority"] == 5
    assert message["properties"] == {"delivery_mode": 2, "message_id": "m"}
