"""Trigger events and recording for tests of the rules transaction against PostgreSQL."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

import psycopg

from contracts import Customer, OrderCreated
from worker.db.rules_store import record_verdicts
from worker.db.workflow_store import load_workflow
from worker.rules.engine import judge
from worker.rules.facts import TriggerEvent, from_order_created
from worker.rules.loading import RuleSet

Conn = psycopg.Connection[tuple[Any, ...]]


def created_event(number: str, *, amount: str = "500", customer_id: str = "C-9") -> TriggerEvent:
    """The trigger event of an OrderCreated for order `number`."""
    return from_order_created(
        OrderCreated(
            event_id=uuid4(),
            command_id=uuid4(),
            order_number=number,
            status="pending",
            version=1,
            customer=Customer(id=customer_id, name="Acme", type="enterprise"),
            amount=Decimal(amount),
            currency="CNY",
            order_date=datetime(2026, 11, 20, tzinfo=UTC).date(),
            actor="erp",
            created_at=datetime.now(UTC),
        )
    )


def record(conn: Conn, rules: RuleSet, event: TriggerEvent) -> int:
    """Judge `event` with `rules` and record the verdicts, as the rules worker does."""
    now = datetime.now(UTC)
    return record_verdicts(conn, event, judge(rules, event, 5, now), load_workflow(conn), now)
