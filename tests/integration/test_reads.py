"""What the CLI reads: order details and command outcomes."""

from decimal import Decimal
from typing import Any
from uuid import uuid4

import psycopg

from contracts import Command, CommandOutcome
from tests.support.commands import change_status, create_order
from worker.db.apply import apply_commands
from worker.db.reads import get_command, get_order, wait_for_outcome
from worker.db.workflow_store import load_workflow
from worker.domain.incoming import IncomingCommand

Conn = psycopg.Connection[tuple[Any, ...]]


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
