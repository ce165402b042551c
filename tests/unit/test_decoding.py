"""Turning AMQP messages into commands, or into a precise reason why not."""

import json
import pickle
from typing import Any
from uuid import uuid4

import pytest

from contracts import ChangeOrderStatus, CreateOrder
from tests.support.commands import create_order
from worker.domain.incoming import IncomingCommand
from worker.messaging.decoding import Envelope, decode_command
from worker.messaging.poison import DeadLetterReason, Poison

CHANGE = "order.status.change"


def change_body(**overrides: Any) -> bytes:
    body = {
        "command_id": str(uuid4()),
        "order_number": "SO-1",
        "to_status": "in_progress",
        "actor": "alice",
    }
    body.update(overrides)
    return json.dumps(body).encode()


def poison_of(envelope: Envelope) -> Poison:
    decoded = decode_command(envelope)
    assert isinstance(decoded, Poison), decoded
    return decoded


def test_a_command_named_by_type_is_decoded_with_its_correlation() -> None:
    body = change_body()
    decoded = decode_command(
        Envelope(
            body,
            CHANGE,
            content_type="application/json",
            type_name="ChangeOrderStatus",
            message_id="m-1",
            correlation_id="corr-1",
        )
    )
    assert isinstance(decoded, IncomingCommand)
    assert isinstance(decoded.command, ChangeOrderStatus)
    assert decoded.command.to_status == "in_progress"
    assert (decoded.message_id, decoded.correlation_id) == ("m-1", "corr-1")


def test_without_a_type_the_routing_key_names_the_command() -> None:
    decoded = decode_command(Envelope(create_order().model_dump_json().encode(), "order.create"))
    assert isinstance(decoded, IncomingCommand)
    assert isinstance(decoded.command, CreateOrder)


def test_the_type_property_wins_over_the_routing_key() -> None:
    decoded = decode_command(Envelope(change_body(), "order.create", type_name="ChangeOrderStatus"))
    assert isinstance(decoded, IncomingCommand)
    assert isinstance(decoded.command, ChangeOrderStatus)


def test_without_a_correlation_id_events_correlate_on_the_command_id() -> None:
    decoded = decode_command(Envelope(change_body(), CHANGE))
    assert isinstance(decoded, IncomingCommand)
    assert decoded.correlation == str(decoded.command.command_id)


@pytest.mark.parametrize(
    "content_type", [None, "application/json", "application/json; charset=utf-8", "text/json"]
)
def test_json_content_types_are_accepted(content_type: str | None) -> None:
    assert isinstance(
        decode_command(Envelope(change_body(), CHANGE, content_type=content_type)),
        IncomingCommand,
    )


def test_malformed_json_is_poison() -> None:
    poison = poison_of(Envelope(b'{"command_id": ', CHANGE))
    assert poison.reason == DeadLetterReason.MALFORMED_JSON
    assert "not valid JSON" in poison.detail


def test_bytes_that_are_not_utf8_are_malformed() -> None:
    assert poison_of(Envelope(b"\xff\xfe\x00", CHANGE)).reason == DeadLetterReason.MALFORMED_JSON


def test_json_that_is_not_an_object_violates_the_schema() -> None:
    poison = poison_of(Envelope(b"[1, 2]", CHANGE))
    assert poison.reason == DeadLetterReason.SCHEMA_VIOLATION
    assert poison.detail == "ChangeOrderStatus must be a JSON object"


def test_schema_violations_name_each_field() -> None:
    body = change_body(command_id="not-a-uuid", to_status="", surprise=1)
    body = json.dumps({k: v for k, v in json.loads(body).items() if k != "actor"}).encode()
    poison = poison_of(Envelope(body, CHANGE))
    assert poison.reason == DeadLetterReason.SCHEMA_VIOLATION
    for field in ("command_id", "to_status", "actor", "surprise"):
        assert f"{field}:" in poison.detail


def test_many_violations_are_summarised() -> None:
    poison = poison_of(Envelope(b"{}", "order.create"))
    assert poison.reason == DeadLetterReason.SCHEMA_VIOLATION
    assert "and 1 more" in poison.detail


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", "NaN"),
        ("amount", "-1"),
        ("amount", "12.34567"),
        ("currency", "cny"),
        ("order_number", " SO-1"),
        ("order_number", "SO-\u00001"),
        ("order_date", "2026-02-30"),
    ],
)
def test_bad_order_fields_violate_the_schema(field: str, value: str) -> None:
    body = json.loads(create_order().model_dump_json())
    body[field] = value
    poison = poison_of(Envelope(json.dumps(body).encode(), "order.create"))
    assert poison.reason == DeadLetterReason.SCHEMA_VIOLATION
    assert f"{field}:" in poison.detail


def test_an_unknown_type_is_poison_naming_the_known_ones() -> None:
    poison = poison_of(Envelope(change_body(), CHANGE, type_name="DeleteOrder"))
    assert poison.reason == DeadLetterReason.UNKNOWN_TYPE
    assert "'DeleteOrder'" in poison.detail
    assert "ChangeOrderStatus, CreateOrder" in poison.detail


def test_an_unknown_routing_key_without_a_type_is_poison() -> None:
    assert (
        poison_of(Envelope(change_body(), "order.delete")).reason == DeadLetterReason.UNKNOWN_TYPE
    )


def test_pickle_is_refused_unread() -> None:
    body = pickle.dumps({"command_id": "x"})
    poison = poison_of(Envelope(body, CHANGE, content_type="application/x-python-serialize"))
    assert poison.reason == DeadLetterReason.UNSUPPORTED_CONTENT_TYPE


@pytest.mark.parametrize(
    ("encoding", "headers"), [("gzip", None), ("binary", None), (None, {"compression": "zlib"})]
)
def test_encoded_or_compressed_bodies_are_refused(
    encoding: str | None, headers: dict[str, str] | None
) -> None:
    envelope = Envelope(change_body(), CHANGE, content_encoding=encoding, headers=headers)
    assert poison_of(envelope).reason == DeadLetterReason.UNSUPPORTED_CONTENT_TYPE
