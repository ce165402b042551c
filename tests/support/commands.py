"""Building commands for tests, with sensible defaults."""

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import uuid4

from contracts import ChangeOrderStatus, CreateOrder, Customer, OrderLine


def order_number(prefix: str = "SO") -> str:
    return f"{prefix}-{uuid4().hex[:10].upper()}"


def create_order(number: str | None = None, **overrides: Any) -> CreateOrder:
    fields: dict[str, Any] = {
        "command_id": uuid4(),
        "order_number": number or order_number(),
        "customer": Customer(id="C-1", name="Acme Trading", type="enterprise"),
        "amount": Decimal("1200.50"),
        "currency": "CNY",
        "order_date": date(2026, 11, 20),
        "lines": (OrderLine(sku="SKU-1", name="Widget", quantity=3, unit_price=Decimal("400.1")),),
        "actor": "erp-sync",
    }
    fields.update(overrides)
    return CreateOrder(**fields)


def change_status(number: str, to_status: str, **overrides: Any) -> ChangeOrderStatus:
    fields: dict[str, Any] = {
        "command_id": uuid4(),
        "order_number": number,
        "to_status": to_status,
        "actor": "alice",
        "reason": f"move to {to_status}",
    }
    fields.update(overrides)
    return ChangeOrderStatus(**fields)
