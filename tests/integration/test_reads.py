"""What the CLI reads: order lists with CRM filters, order details, command outcomes."""

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from contracts import Command, CommandOutcome, Customer
from tests.support.commands import change_status, create_order
from worker.db.apply import apply_commands
from worker.db.reads import OrderFilter, get_command, get_order, list_orders, wait_for_outcome
from worker.db.workflow_store import load_workflow
from worker.domain.incoming import IncomingCommand

Conn = psycopg.Connection[tuple[Any, ...]]


@pytest.fixture
def catalogue(database_url: str) -> Conn:
    """Five orders for two customers over three dates, in various statuses."""
    orders = [
        ("SO-2026-001", "Acme Trading", "C-1", date(2026, 11, 1), None),
        ("SO-2026-002", "Acme Trading", "C-1", date(2026, 11, 10), "in_progress"),
        ("SO-2026-003", "上海示例贸易", "C-2", date(2026, 11, 10), "cancelled"),
        ("SO-2026-004", "50%_Discount Ltd", "C-3", date(2026, 11, 20), "in_progress"),
        ("PO-7", "Beta Works", "C-4", date(2026, 12, 1), None),
    ]
    with psycopg.connect(database_url) as conn:
        workflow = load_workflow(conn)
        batch = []
        for number, name, customer_id, day, status in orders:
            customer = Customer(id=customer_id, name=name, type="vip")
            batch.append(IncomingCommand(create_order(number, customer=customer, order_date=day)))
            if status:
                batch.append(IncomingCommand(change_status(number, status)))
        apply_commands(conn, workflow, batch)
    return psycopg.connect(database_url, autocommit=True)


def numbers(conn: Conn, **filters: Any) -> list[str]:
    return [order.order_number for order in list_orders(conn, OrderFilter(**filters))]


def test_orders_are_listed_newest_first(catalogue: Conn) -> None:
    assert numbers(catalogue) == [
        "PO-7",
        "SO-2026-004",
        "SO-2026-002",
        "SO-2026-003",
        "SO-2026-001",
    ]


def test_filter_by_status(catalogue: Conn) -> None:
    assert numbers(catalogue, status="in_progress") == ["SO-2026-004", "SO-2026-002"]
    assert numbers(catalogue, status="completed") == []


def test_filter_by_customer_name_part_any_case_or_by_customer_id(catalogue: Conn) -> None:
    assert numbers(catalogue, customer="acme") == ["SO-2026-002", "SO-2026-001"]
    assert numbers(catalogue, customer="示例") == ["SO-2026-003"]
    assert numbers(catalogue, customer="C-4") == ["PO-7"]


def test_wildcards_in_a_search_are_taken_literally(catalogue: Conn) -> None:
    assert numbers(catalogue, customer="50%_") == ["SO-2026-004"]
    assert numbers(catalogue, customer="%") == ["SO-2026-004"]
    assert numbers(catalogue, number="_") == []


def test_filter_by_order_number_part(catalogue: Conn) -> None:
    assert numbers(catalogue, number="2026-00") == [
        "SO-2026-004",
        "SO-2026-002",
        "SO-2026-003",
        "SO-2026-001",
    ]
    assert numbers(catalogue, number="po-") == ["PO-7"]


def test_filter_by_date_range_inclusive(catalogue: Conn) -> None:
    assert numbers(catalogue, since=date(2026, 11, 10), until=date(2026, 11, 20)) == [
        "SO-2026-004",
        "SO-2026-002",
        "SO-2026-003",
    ]
    assert numbers(catalogue, until=date(2026, 11, 1)) == ["SO-2026-001"]


def test_filters_combine_and_limit(catalogue: Conn) -> None:
    assert numbers(catalogue, customer="acme", status="in_progress") == ["SO-2026-002"]
    assert numbers(catalogue, limit=2) == ["PO-7", "SO-2026-004"]


def test_an_order_shows_its_lines_and_history_oldest_first(database_url: str) -> None:
    number = f"SO-{uuid4().hex[:6]}"
    commands: list[Command] = [
        create_order(number, amount=Decimal("20000.00")),
        change_status(number, "in_progress", actor="alice", reason="confirmed"),
        change_status(number, "completed", actor="bob", reason=None),
    ]
    with psycopg.connect(database_url) as conn:
        apply_commands(conn, load_workflow(conn), [IncomingCommand(c) for c in commands])
        order = get_order(conn, number)
    assert order is not None
    assert (order.status, order.version, order.amount) == ("completed", 3, Decimal("20000.00"))
    assert [(line.sku, line.quantity) for line in order.lines] == [("SKU-1", 3)]
    assert [(h.from_status, h.to_status, h.version, h.actor) for h in order.history] == [
        (None, "pending", 1, "erp-sync"),
        ("pending", "in_progress", 2, "alice"),
        ("in_progress", "completed", 3, "bob"),
    ]
    assert [h.command_id for h in order.history] == [c.command_id for c in commands]
    dumped = order.model_dump(mode="json")
    assert dumped["amount"] == "20000.00"
    assert set(dumped["history"][0]) >= {
        "from_status",
        "to_status",
        "version",
        "actor",
        "reason",
        "changed_at",
        "command_id",
    }


def test_an_unknown_order_reads_as_none(db: Conn) -> None:
    assert get_order(db, "SO-NONE") is None


def test_a_command_outcome_is_read_back_and_can_be_waited_for(database_url: str) -> None:
    command = change_status("SO-NONE", "in_progress")
    with psycopg.connect(database_url, autocommit=True) as reader:
        assert get_command(reader, command.command_id) is None
        assert wait_for_outcome(reader, command.command_id, timeout=0.1) is None
        with psycopg.connect(database_url) as conn:
            apply_commands(conn, load_workflow(conn), [IncomingCommand(command)])
        record = wait_for_outcome(reader, command.command_id, timeout=5)
    assert record is not None
    assert (record.outcome, record.reason) == (CommandOutcome.REJECTED, "unknown_order")
    assert record.deliveries == 1
