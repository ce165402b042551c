"""Read orders: a filtered, sorted list with keyset paging and a total, and one order whole.

Paging is by keyset, not offset: the cursor carries the sort value and order
number of the last order of a page, so the next page starts right after it
however many orders came in meanwhile, and a deep page costs what the first
does. The cursor names the sort it was made for; using it with another sort is
refused rather than answered with a page that skips or repeats orders.
"""

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Protocol

from worker.domain.workflow import Workflow
from worker.services.errors import InvalidRequest, NotFound
from worker.views import CommandRecord, OrderDetail, OrderSummary, RuleFiringView, TaskView

MAX_PAGE = 10_000

SortValue = str | date | datetime | Decimal


class OrderSort(StrEnum):
    """What an order list can be sorted by; order number breaks every tie."""

    NUMBER = "number"
    DATE = "date"
    CREATED = "created"
    UPDATED = "updated"
    AMOUNT = "amount"


def sort_value(order: OrderSummary, sort: OrderSort) -> SortValue:
    """The value of `order` that `sort` orders by."""
    values: dict[OrderSort, SortValue] = {
        OrderSort.NUMBER: order.order_number,
        OrderSort.DATE: order.order_date,
        OrderSort.CREATED: order.created_at,
        OrderSort.UPDATED: order.updated_at,
        OrderSort.AMOUNT: order.amount,
    }
    return values[sort]


def _parse_sort_value(sort: OrderSort, text: str) -> SortValue:
    if sort is OrderSort.DATE:
        return date.fromisoformat(text)
    if sort in (OrderSort.CREATED, OrderSort.UPDATED):
        return datetime.fromisoformat(text)
    if sort is OrderSort.AMOUNT:
        return Decimal(text)
    return text


@dataclass(frozen=True)
class OrderFilter:
    """The filters of a CRM order list; None means "any", and all given ones must hold."""

    status: str | None = None
    customer: str | None = None
    """The customer name contains this text (ignoring case), or the customer id is it."""
    number: str | None = None
    """The order number contains this text (ignoring case)."""
    customer_type: str | None = None
    since: date | None = None
    until: date | None = None


@dataclass(frozen=True)
class Position:
    """Where a page starts: right after the order with this sort value and number."""

    value: SortValue
    order_number: str


@dataclass(frozen=True)
class OrderListQuery:
    """One page of an order list: `after` is the `next` cursor of the page before."""

    filter: OrderFilter = field(default_factory=OrderFilter)
    sort: OrderSort = OrderSort.DATE
    descending: bool = True
    limit: int = 50
    after: str | None = None


@dataclass(frozen=True)
class OrderPage:
    """A page of orders, how many match in all, and the cursor of the next page (None: last)."""

    items: tuple[OrderSummary, ...]
    total: int
    next: str | None


class OrderStore(Protocol):
    """The reads of orders the use cases need."""

    def workflow(self) -> Workflow: ...

    def count_orders(self, order_filter: OrderFilter) -> int: ...

    def list_orders(
        self, query: OrderListQuery, after: Position | None, limit: int
    ) -> Sequence[OrderSummary]:
        """Up to `limit` orders matching `query.filter`, in its sort order, after `after`."""

    def order(self, order_number: str) -> OrderDetail | None:
        """The order with its lines and history, or None."""

    def rule_firings(self, order_number: str) -> Sequence[RuleFiringView]: ...

    def tasks(self, order_number: str) -> Sequence[TaskView]: ...

    def commands(self, order_number: str) -> Sequence[CommandRecord]:
        """Every command the inbox recorded for the order, rejected ones included, oldest first."""


def list_orders(store: OrderStore, query: OrderListQuery) -> OrderPage:
    """One page of the orders matching `query.filter`, with the total and the next cursor."""
    if not 1 <= query.limit <= MAX_PAGE:
        raise InvalidRequest("limit", f"limit must be between 1 and {MAX_PAGE}")
    status = query.filter.status
    if status is not None:
        workflow = store.workflow()
        if not workflow.knows(status):
            known = ", ".join(s.code for s in workflow.statuses)
            raise InvalidRequest("status", f"{status!r} is not a status; known: {known}")
    after = None if query.after is None else decode_cursor(query.after, query)
    found = store.list_orders(query, after, query.limit + 1)
    items = tuple(found[: query.limit])
    more = len(found) > query.limit
    next_cursor = encode_cursor(items[-1], query) if more else None
    return OrderPage(items=items, total=store.count_orders(query.filter), next=next_cursor)


def show_order(store: OrderStore, order_number: str) -> OrderDetail:
    """The order with its lines, history, rule firings, tasks, next statuses and commands."""
    order = store.order(order_number)
    if order is None:
        raise NotFound(f"no order {order_number}")
    return order.model_copy(
        update={
            "rule_firings": tuple(store.rule_firings(order_number)),
            "tasks": tuple(store.tasks(order_number)),
            "next_statuses": tuple(store.workflow().next_statuses(order.status)),
            "commands": tuple(store.commands(order_number)),
        }
    )


def encode_cursor(last: OrderSummary, query: OrderListQuery) -> str:
    """The opaque cursor of the page after `last`, for the same sort."""
    value = sort_value(last, query.sort)
    text = value.isoformat() if isinstance(value, date) else str(value)
    data = [query.sort.value, query.descending, text, last.order_number]
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, query: OrderListQuery) -> Position:
    """Where the page after `cursor` starts; refuses a cursor of another sort or none at all."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        sort, descending, text, order_number = json.loads(base64.urlsafe_b64decode(padded))
        position = Position(_parse_sort_value(OrderSort(sort), text), str(order_number))
    except (ValueError, TypeError, InvalidOperation, binascii.Error) as error:
        raise InvalidRequest("after", "not a cursor this list gave out") from error
    if (sort, descending) != (query.sort.value, query.descending):
        raise InvalidRequest("after", "the cursor belongs to another sort order")
    return position
