"""The order list and detail against PostgreSQL: CRM filters, sorts, keyset pages, commands."""

from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from contracts import Customer
from tests.support.commands import change_status, create_order
from worker.db.apply import apply_commands
from worker.db.order_store import PostgresOrders
from worker.db.workflow_store import load_workflow
from worker.domain.incoming import IncomingCommand
from worker.services.errors import InvalidRequest
from worker.services.orders import OrderFilter, OrderListQuery, OrderSort, list_orders, show_order

Conn = psycopg.Connection[tuple[Any, ...]]


@pytest.fixture
def catalogue(database_url: str) -> Conn:
    """Five orders for four customers over four dates, in various statuses and amounts."""
    orders = [
        ("SO-2026-001", "Acme Trading", "C-1", "vip", date(2026, 11, 1), "300", None),
        ("SO-2026-002", "Acme Trading", "C-1", "vip", date(2026, 11, 10), "100", "in_progress"),
        (
            "SO-2026-003",
            "上海示例贸易",
            "C-2",
            "enterprise",
            date(2026, 11, 10),
            "500",
            "cancelled",
        ),
        ("SO-2026-004", "50%_Discount Ltd", "C-3", "vip", date(2026, 11, 20), "200", "in_progress"),
        ("PO-7", "Beta Works", "C-4", "standard", date(2026, 12, 1), "400", None),
    ]
    with psycopg.connect(database_url) as conn:
        workflow = load_workflow(conn)
        batch = []
        for number, name, customer_id, kind, day, amount, status in orders:
            customer = Customer(id=customer_id, name=name, type=kind)
            create = create_order(number, customer=customer, order_date=day, amount=Decimal(amount))
            batch.append(IncomingCommand(create))
            if status:
                batch.append(IncomingCommand(change_status(number, status)))
        apply_commands(conn, workflow, batch)
    return psycopg.connect(database_url, autocommit=True)


def numbers(conn: Conn, **filters: Any) -> list[str]:
    page = list_orders(PostgresOrders(conn), OrderListQuery(filter=OrderFilter(**filters)))
    return [order.order_number for order in page.items]


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


def test_filter_by_customer_type(catalogue: Conn) -> None:
    assert numbers(catalogue, customer_type="vip") == ["SO-2026-004", "SO-2026-002", "SO-2026-001"]
    assert numbers(catalogue, customer_type="VIP") == []


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


def test_filters_combine(catalogue: Conn) -> None:
    assert numbers(catalogue, customer="acme", status="in_progress") == ["SO-2026-002"]


def pages(conn: Conn, query: OrderListQuery) -> tuple[list[list[str]], set[int]]:
    """Every page of `query`, following `next`, and the totals each page reported."""
    store = PostgresOrders(conn)
    seen: list[list[str]] = []
    totals: set[int] = set()
    after = None
    while True:
        page = list_orders(store, OrderListQuery(**{**query.__dict__, "after": after}))
        seen.append([order.order_number for order in page.items])
        totals.add(page.total)
        if page.next is None:
            return seen, totals
        after = page.next


@pytest.mark.parametrize(
    ("sort", "descending", "expected"),
    [
        (
            OrderSort.DATE,
            True,
            ["PO-7", "SO-2026-004", "SO-2026-002", "SO-2026-003", "SO-2026-001"],
        ),
        (
            OrderSort.DATE,
            False,
            ["SO-2026-001", "SO-2026-002", "SO-2026-003", "SO-2026-004", "PO-7"],
        ),
        (
            OrderSort.AMOUNT,
            True,
            ["SO-2026-003", "PO-7", "SO-2026-001", "SO-2026-004", "SO-2026-002"],
        ),
        (
            OrderSort.AMOUNT,
            False,
            ["SO-2026-002", "SO-2026-004", "SO-2026-001", "PO-7", "SO-2026-003"],
        ),
        (
            OrderSort.NUMBER,
            False,
            ["PO-7", "SO-2026-001", "SO-2026-002", "SO-2026-003", "SO-2026-004"],
        ),
    ],
)
def test_keyset_pages_cover_every_order_once_in_sort_order(
    catalogue: Conn, sort: OrderSort, descending: bool, expected: list[str]
) -> None:
    query = OrderListQuery(sort=sort, descending=descending, limit=2)
    found, totals = pages(catalogue, query)
    assert [len(page) for page in found] == [2, 2, 1]
    assert [number for page in found for number in page] == expected
    assert totals == {5}


def test_pages_by_creation_and_update_time_are_complete(catalogue: Conn) -> None:
    for sort in (OrderSort.CREATED, OrderSort.UPDATED):
        for descending in (False, True):
            query = OrderListQuery(sort=sort, descending=descending, limit=1)
            found, _ = pages(catalogue, query)
            flat = [number for page in found for number in page]
            assert sorted(flat) == sorted(numbers(catalogue)), (sort, descending)


def test_the_total_counts_every_match_not_the_page(catalogue: Conn) -> None:
    page = list_orders(
        PostgresOrders(catalogue), OrderListQuery(filter=OrderFilter(customer="acme"), limit=1)
    )
    assert (len(page.items), page.total) == (1, 2)
    assert page.next is not None


def test_a_cursor_of_another_sort_is_refused(catalogue: Conn) -> None:
    store = PostgresOrders(catalogue)
    first = list_orders(store, OrderListQuery(sort=OrderSort.AMOUNT, limit=1))
    with pytest.raises(InvalidRequest) as refused:
        list_orders(store, OrderListQuery(sort=OrderSort.NUMBER, limit=1, after=first.next))
    assert refused.value.field == "after"


def test_an_order_shows_next_statuses_and_every_command_rejected_ones_included(
    database_url: str,
) -> None:
    create = create_order("SO-SHOW-1")
    start = change_status("SO-SHOW-1", "in_progress")
    refused = change_status("SO-SHOW-1", "pending_review")
    with psycopg.connect(database_url) as conn:
        workflow = load_workflow(conn)
        for command in (create, start, refused):
            apply_commands(conn, workflow, [IncomingCommand(command)])
    with psycopg.connect(database_url, autocommit=True) as conn:
        order = show_order(PostgresOrders(conn), "SO-SHOW-1")
    assert order.next_statuses == ("pending", "processed", "completed", "cancelled")
    assert [c.command_id for c in order.commands] == [
        create.command_id,
        start.command_id,
        refused.command_id,
    ]
    assert [c.outcome.value for c in order.commands] == ["applied", "applied", "rejected"]
    assert order.commands[2].reason == "invalid_transition"
