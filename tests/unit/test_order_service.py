"""Listing and showing orders, against an in-memory order store."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest

from contracts import CommandOutcome, Customer
from tests.unit.fakes import NOW, FakeOrders
from worker.services.errors import InvalidRequest, NotFound
from worker.services.orders import (
    OrderFilter,
    OrderListQuery,
    OrderSort,
    list_orders,
    show_order,
)
from worker.views import CommandRecord, OrderDetail


def order(number: str, amount: str, day: int, status: str = "pending") -> OrderDetail:
    moment = datetime(2026, 11, day, tzinfo=UTC)
    return OrderDetail(
        order_number=number,
        status=status,
        version=1,
        amount=Decimal(amount),
        currency="CNY",
        customer=Customer(id=f"C-{number}", name="Acme", type="vip"),
        order_date=date(2026, 11, day),
        created_at=moment,
        updated_at=moment + timedelta(hours=1),
        lines=(),
        history=(),
    )


@pytest.fixture
def store() -> FakeOrders:
    orders = [
        order("SO-1", "300", 1),
        order("SO-2", "100", 10, "in_progress"),
        order("SO-3", "500", 10),
        order("SO-4", "200", 20, "in_progress"),
    ]
    return FakeOrders(details={o.order_number: o for o in orders})


def every_page(store: FakeOrders, query: OrderListQuery) -> list[list[str]]:
    pages, after = [], None
    while True:
        page = list_orders(store, OrderListQuery(**{**query.__dict__, "after": after}))
        pages.append([o.order_number for o in page.items])
        assert page.total == 4
        if page.next is None:
            return pages
        after = page.next


def test_pages_follow_the_cursor_to_the_end(store: FakeOrders) -> None:
    pages = every_page(store, OrderListQuery(sort=OrderSort.AMOUNT, descending=False, limit=3))
    assert pages == [["SO-2", "SO-4", "SO-1"], ["SO-3"]]


def test_a_page_that_holds_the_rest_has_no_next(store: FakeOrders) -> None:
    page = list_orders(store, OrderListQuery(limit=4))
    assert page.next is None
    assert [o.order_number for o in page.items] == ["SO-4", "SO-2", "SO-3", "SO-1"]


def test_the_total_counts_the_filtered_orders(store: FakeOrders) -> None:
    page = list_orders(store, OrderListQuery(filter=OrderFilter(status="in_progress"), limit=1))
    assert (len(page.items), page.total) == (1, 2)


@pytest.mark.parametrize("cursor", ["not a cursor", "W10", "WyJhbW91bnQiLCB0cnVlXQ"])
def test_a_cursor_it_did_not_give_out_is_refused(store: FakeOrders, cursor: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        list_orders(store, OrderListQuery(after=cursor))
    assert refused.value.field == "after"


def test_a_cursor_of_another_direction_is_refused(store: FakeOrders) -> None:
    first = list_orders(store, OrderListQuery(limit=1))
    with pytest.raises(InvalidRequest, match="another sort"):
        list_orders(store, OrderListQuery(limit=1, descending=False, after=first.next))


def test_an_unknown_status_is_refused_with_the_known_ones(store: FakeOrders) -> None:
    with pytest.raises(InvalidRequest, match="known: pending") as refused:
        list_orders(store, OrderListQuery(filter=OrderFilter(status="shipped")))
    assert refused.value.field == "status"


@pytest.mark.parametrize("limit", [0, 10_001])
def test_a_limit_out_of_range_is_refused(store: FakeOrders, limit: int) -> None:
    with pytest.raises(InvalidRequest, match="limit"):
        list_orders(store, OrderListQuery(limit=limit))


def test_an_order_shows_its_next_statuses_and_commands(store: FakeOrders) -> None:
    rejected = CommandRecord(
        command_id=uuid4(),
        command_type="ChangeOrderStatus",
        order_number="SO-2",
        outcome=CommandOutcome.REJECTED,
        reason="invalid_transition",
        detail="in_progress -> pending_review is not allowed",
        correlation_id=None,
        processed_at=NOW,
        deliveries=1,
        last_seen_at=NOW,
    )
    store.commands_of["SO-2"] = [rejected]

    shown = show_order(store, "SO-2")

    assert shown.next_statuses == ("pending", "processed", "completed", "cancelled")
    assert shown.commands == (rejected,)


def test_an_unknown_order_is_not_found(store: FakeOrders) -> None:
    with pytest.raises(NotFound, match="SO-NOPE"):
        show_order(store, "SO-NOPE")
