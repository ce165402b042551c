"""The values a rule's condition and templates see, built from an event or an order's stay.

Every condition sees the same names; a value that does not apply to the
trigger is null (`from_status` of a new order, `stayed_hours` of an event).

Amounts are decimals on the wire and in the database, and CEL has no decimal
type. `amount` is the nearest double. Rounding to the nearest double keeps
order: `amount > 10000` never misjudges an amount that differs from the
literal, as long as both have at most 15 significant digits (every amount
below 100 billion with 4 decimals, or below 10 trillion with 2). For exact
arithmetic on any amount, `amount_e4` is the amount in ten-thousandths as an
integer (20000.50 is 200005000): `amount_e4 > 100000000` is exactly "over 10000".
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from contracts import OrderCreated, OrderStatusChanged

FACT_NAMES = (
    "trigger",
    "order_number",
    "status",
    "from_status",
    "to_status",
    "version",
    "actor",
    "reason",
    "amount",
    "amount_e4",
    "currency",
    "customer_id",
    "customer_type",
    "order_date",
    "event_time",
    "depth",
    "stayed_hours",
)
"""Every name a condition or template may use."""

NULLABLE_FACTS = ("from_status", "reason", "stayed_hours")
"""The facts that are null on some events of a trigger (see each trigger's facts below)."""


@dataclass(frozen=True)
class TriggerEvent:
    """Something rules react to: an event from the queue, or a stay found by the scan.

    `event_id` keys the firings: a redelivered event, or the same stay found
    again, has the same id, so nothing fires twice.
    """

    event_id: UUID
    kind: str
    order_number: str
    order_version: int
    depth: int
    correlation_id: str | None
    facts: dict[str, Any]
    amount_text: str
    """The exact amount, as templates show it (`${amount}` is never a rounded double)."""

    def template_values(self) -> dict[str, str]:
        """The facts as text for templates."""
        return {
            **{name: as_text(value) for name, value in self.facts.items()},
            "amount": self.amount_text,
        }


def _timestamp(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _money(amount: Decimal) -> dict[str, Any]:
    return {"amount": float(amount), "amount_e4": int(amount.scaleb(4))}


def from_order_created(event: OrderCreated) -> TriggerEvent:
    """The facts of a registered order."""
    facts = {
        "trigger": "order.created",
        "order_number": event.order_number,
        "status": event.status,
        "from_status": None,
        "to_status": event.status,
        "version": event.version,
        "actor": event.actor,
        "reason": None,
        **_money(event.amount),
        "currency": event.currency,
        "customer_id": event.customer.id,
        "customer_type": event.customer.type,
        "order_date": _timestamp(event.order_date),
        "event_time": event.created_at,
        "depth": 0,
        "stayed_hours": None,
    }
    return _trigger_event(event.event_id, event.correlation_id, facts, event.amount)


def from_status_changed(event: OrderStatusChanged) -> TriggerEvent:
    """The facts of a status change, with the order snapshot the event carries."""
    order = event.order
    facts = {
        "trigger": "order.status.changed",
        "order_number": event.order_number,
        "status": event.to_status,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "version": event.version,
        "actor": event.actor,
        "reason": event.reason,
        **_money(order.amount),
        "currency": order.currency,
        "customer_id": order.customer_id,
        "customer_type": order.customer_type,
        "order_date": _timestamp(order.order_date),
        "event_time": event.changed_at,
        "depth": event.rule_depth,
        "stayed_hours": None,
    }
    return _trigger_event(event.event_id, event.correlation_id, facts, order.amount)


@dataclass(frozen=True)
class Stay:
    """An order that has been in its current status since `entered_at` (from the scan)."""

    order_number: str
    status: str
    version: int
    from_status: str | None
    actor: str
    reason: str | None
    amount: Decimal
    currency: str
    customer_id: str
    customer_type: str
    order_date: date
    entered_at: datetime
    correlation_id: str | None
    depth: int
    """The rule depth of the change that began the stay: a stay rule carries it on."""


def from_stay(stay: Stay, firing_id: UUID, now: datetime) -> TriggerEvent:
    """The facts of an order that stayed in its status; `firing_id` names this stay."""
    facts = {
        "trigger": "order.stayed",
        "order_number": stay.order_number,
        "status": stay.status,
        "from_status": stay.from_status,
        "to_status": stay.status,
        "version": stay.version,
        "actor": stay.actor,
        "reason": stay.reason,
        **_money(stay.amount),
        "currency": stay.currency,
        "customer_id": stay.customer_id,
        "customer_type": stay.customer_type,
        "order_date": _timestamp(stay.order_date),
        "event_time": stay.entered_at,
        "depth": stay.depth,
        "stayed_hours": (now - stay.entered_at).total_seconds() / 3600,
    }
    return _trigger_event(firing_id, stay.correlation_id, facts, stay.amount)


def _trigger_event(
    event_id: UUID, correlation_id: str | None, facts: dict[str, Any], amount: Decimal
) -> TriggerEvent:
    """The trigger event of `facts`: its kind, order, version and depth are the facts' own."""
    return TriggerEvent(
        event_id=event_id,
        kind=facts["trigger"],
        order_number=facts["order_number"],
        order_version=facts["version"],
        depth=facts["depth"],
        correlation_id=correlation_id,
        facts=facts,
        amount_text=format(amount, "f"),
    )


def as_json(facts: dict[str, Any]) -> dict[str, Any]:
    """The facts as recorded and printed: timestamps as ISO 8601 text."""
    return {
        name: value.isoformat() if isinstance(value, datetime) else value
        for name, value in facts.items()
    }


def as_text(value: Any) -> str:
    """A fact as templates show it: amounts keep their decimals, null is empty."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    return str(value)
