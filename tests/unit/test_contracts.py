"""The wire contracts: strict models and the JSON Schemas other languages validate with."""

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import uuid4

import jsonschema
import pytest
from pydantic import ValidationError

from contracts import (
    COMMANDS,
    EVENTS,
    ChangeOrderStatus,
    OrderSnapshot,
    OrderStatusChanged,
    OrderStatusChangeRejected,
    RejectionReason,
)
from contracts.schemas_export import SCHEMA_DIR, render_schemas, stale_schema_files, write_schemas
from tests.support.commands import change_status, create_order


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.json").read_text("utf-8"))
    return loaded


def test_checked_in_schemas_match_the_models() -> None:
    assert stale_schema_files() == [], "run `make schemas` and commit contracts/schemas"


def test_the_staleness_check_notices_an_edited_or_missing_file(tmp_path: Path) -> None:
    write_schemas(tmp_path)
    assert stale_schema_files(tmp_path) == []
    (tmp_path / "CreateOrder.json").write_text("{}", "utf-8")
    (tmp_path / "OrderCreated.json").unlink()
    (tmp_path / "Leftover.json").write_text("{}", "utf-8")
    assert stale_schema_files(tmp_path) == [
        "CreateOrder.json",
        "Leftover.json",
        "OrderCreated.json",
    ]


def test_every_message_has_a_schema_with_its_routing_key() -> None:
    rendered = render_schemas()
    for kind in (*COMMANDS, *EVENTS):
        assert json.loads(rendered[f"{kind.type_name}.json"])["x-routing-key"] == kind.routing_key


def test_models_are_frozen_and_refuse_unknown_fields() -> None:
    command = change_status("SO-1", "in_progress")
    with pytest.raises(ValidationError):
        command.to_status = "cancelled"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        ChangeOrderStatus.model_validate({**command.model_dump(), "priority": "high"})


def test_amounts_travel_as_decimal_strings() -> None:
    body = json.loads(create_order(amount=Decimal("20000.00")).model_dump_json())
    assert body["amount"] == "20000.00"
    assert body["lines"][0]["unit_price"] == "400.1"


def test_commands_we_send_validate_against_their_schemas() -> None:
    jsonschema.validate(json.loads(create_order().model_dump_json()), schema("CreateOrder"))
    command = change_status("SO-1", "completed", expected_version=3)
    jsonschema.validate(json.loads(command.model_dump_json()), schema("ChangeOrderStatus"))


def test_a_hand_written_command_can_send_the_amount_as_a_number() -> None:
    body = json.loads(create_order().model_dump_json())
    body["amount"] = 20000
    jsonschema.validate(body, schema("CreateOrder"))


def test_the_command_schema_refuses_what_the_worker_refuses() -> None:
    body = json.loads(create_order().model_dump_json())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**body, "amount": "12.34567"}, schema("CreateOrder"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**body, "surprise": True}, schema("CreateOrder"))


def test_events_we_publish_validate_against_their_schemas() -> None:
    now = datetime(2026, 11, 26, 8, 30, tzinfo=UTC)
    changed = OrderStatusChanged(
        event_id=uuid4(),
        command_id=uuid4(),
        correlation_id="c-1",
        order_number="SO-1",
        from_status="pending",
        to_status="in_progress",
        version=2,
        actor="alice",
        reason=None,
        changed_at=now,
        order=OrderSnapshot(
            amount=Decimal("20000.00"),
            currency="CNY",
            customer_id="C-1",
            customer_type="vip",
            order_date=date(2026, 11, 1),
        ),
    )
    payload = json.loads(changed.model_dump_json())
    assert payload["order"]["amount"] == "20000.00"
    jsonschema.validate(payload, schema("OrderStatusChanged"))
    rejected = OrderStatusChangeRejected(
        event_id=uuid4(),
        command_id=uuid4(),
        command_type="ChangeOrderStatus",
        order_number="SO-1",
        reason=RejectionReason.INVALID_TRANSITION,
        detail="completed -> cancelled is not allowed",
        rejected_at=now,
    )
    jsonschema.validate(json.loads(rejected.model_dump_json()), schema("OrderStatusChangeRejected"))


def test_rejection_reasons_in_the_schema_are_the_contract_codes() -> None:
    reasons = schema("OrderStatusChangeRejected")["$defs"]["RejectionReason"]["enum"]
    assert reasons == [
        "unknown_order",
        "invalid_transition",
        "version_conflict",
        "unknown_status",
        "duplicate_order",
    ]


def test_consumers_validating_events_tolerate_fields_added_later() -> None:
    payload = json.loads(create_order().model_dump_json())
    created = {
        **{key: payload[key] for key in ("command_id", "order_number", "customer", "amount")},
        **{key: payload[key] for key in ("currency", "order_date", "lines", "actor")},
        "event_id": str(uuid4()),
        "status": "pending",
        "version": 1,
        "actor": "erp",
        "created_at": "2026-11-26T08:30:00Z",
        "added_in_a_later_release": {"anything": True},
    }
    jsonschema.validate(created, schema("OrderCreated"))
