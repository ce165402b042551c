"""`order-status verify` against a real database: clean passes, each kind of damage is found.

The damage is made by hand. The history refuses UPDATE and DELETE, so broken
histories are made by inserting rows that do not fit; the other tables are
changed directly.
"""

import json
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from click.testing import CliRunner, Result

from tests.support.commands import change_status, create_order, order_number
from worker.cli import main
from worker.db.apply import apply_commands
from worker.db.workflow_store import load_workflow
from worker.domain.incoming import IncomingCommand

Conn = psycopg.Connection[tuple[Any, ...]]


def verify(database_url: str, *args: str) -> Result:
    return CliRunner().invoke(
        main, ["verify", *args], env={"ORDERS_DATABASE_URL": database_url}, catch_exceptions=False
    )


def verdict(database_url: str, *args: str) -> tuple[int, dict[str, Any]]:
    result = verify(database_url, "--json", *args)
    return result.exit_code, json.loads(result.output)


def violations_of(data: dict[str, Any], check: str) -> list[dict[str, Any]]:
    return [v for v in data["violations"] if v["check"] == check]


@pytest.fixture
def orders(database_url: str, db: Conn) -> list[str]:
    """Three orders moved along the workflow, one command refused, every event published."""
    numbers = [order_number() for _ in range(3)]
    commands: list[Any] = []
    for number in numbers:
        commands += [
            create_order(number),
            change_status(number, "in_progress"),
            change_status(number, "pending_review"),  # refused: not allowed from in_progress
            change_status(number, "completed"),
        ]
    with psycopg.connect(database_url) as conn:
        apply_commands(conn, load_workflow(conn), [IncomingCommand(c) for c in commands])
    db.execute("UPDATE outbox SET published_at = now()")
    return numbers


def history_command(db: Conn, number: str, version: int) -> str:
    row = db.execute(
        "SELECT command_id::text FROM order_status_history"
        " WHERE order_number = %s AND version = %s",
        (number, version),
    ).fetchone()
    assert row is not None
    return str(row[0])


def test_a_clean_database_passes(database_url: str, orders: list[str]) -> None:
    result = verify(database_url)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("passed")
    code, data = verdict(database_url)
    assert code == 0
    assert data["passed"] is True
    assert data["violations"] == []
    assert set(data["counts"]) == {
        "history_gapless",
        "status_matches_history",
        "one_event_per_change",
        "outbox_drained",
        "inbox_matches_history",
    }


def test_a_gap_in_an_orders_history_is_found(
    database_url: str, db: Conn, orders: list[str]
) -> None:
    number = orders[0]
    command_id = str(uuid4())
    # A version 5 after 3, with everything else made to agree with it.
    db.execute(
        """INSERT INTO order_status_history
               (order_number, from_status, to_status, version, actor, changed_at, command_id)
           VALUES (%s, 'completed', 'in_progress', 5, 'intruder', now(), %s)""",
        (number, command_id),
    )
    db.execute(
        "UPDATE orders SET status = 'in_progress', version = 5 WHERE order_number = %s", (number,)
    )
    db.execute(
        """INSERT INTO processed_commands (command_id, command_type, order_number, outcome,
               fingerprint, processed_at, last_seen_at)
           VALUES (%s, 'ChangeOrderStatus', %s, 'applied', 'x', now(), now())""",
        (command_id, number),
    )
    db.execute(
        """INSERT INTO outbox (event_id, routing_key, message_type, payload, order_number,
               command_id, published_at)
           VALUES (%s, 'order.status.changed', 'OrderStatusChanged', '{}', %s, %s, now())""",
        (uuid4(), number, command_id),
    )
    code, data = verdict(database_url)
    assert code == 1
    assert data["counts"]["history_gapless"] == 1
    assert sum(data["counts"].values()) == 1, data
    [gap] = data["violations"]
    assert gap["ids"] == {"order_number": number}
    assert "1, 2, 3, 5" in gap["detail"]


def test_an_order_whose_status_differs_from_its_last_history_row_is_found(
    database_url: str, db: Conn, orders: list[str]
) -> None:
    db.execute("UPDATE orders SET status = 'cancelled' WHERE order_number = %s", (orders[1],))
    result = verify(database_url)
    assert result.exit_code == 1
    assert (
        f"status_matches_history: order_number={orders[1]}: order is cancelled v3;"
        " its last history row is completed v3"
    ) in result.output
    assert result.output.splitlines()[-1].startswith("FAILED")


def test_a_change_without_its_event_or_with_two_is_found(
    database_url: str, db: Conn, orders: list[str]
) -> None:
    missing = history_command(db, orders[0], 2)
    doubled = history_command(db, orders[1], 3)
    db.execute("DELETE FROM outbox WHERE command_id = %s", (missing,))
    db.execute(
        """INSERT INTO outbox (event_id, routing_key, message_type, payload, order_number,
               command_id, published_at)
           SELECT gen_random_uuid(), routing_key, message_type, payload, order_number,
                  command_id, published_at
           FROM outbox WHERE command_id = %s""",
        (doubled,),
    )
    stray = uuid4()
    db.execute(
        """INSERT INTO outbox (event_id, routing_key, message_type, payload, order_number,
               command_id, published_at)
           VALUES (%s, 'order.status.changed', 'OrderStatusChanged', '{}', %s, %s, now())""",
        (stray, orders[2], uuid4()),
    )
    code, data = verdict(database_url)
    assert code == 1
    found = violations_of(data, "one_event_per_change")
    assert len(found) == 3, data
    by_command = {v["ids"]["command_id"]: v for v in found}
    assert by_command[missing]["ids"]["event_ids"] == []
    assert by_command[missing]["ids"]["version"] == 2
    assert len(by_command[doubled]["ids"]["event_ids"]) == 2
    assert [v["ids"]["event_id"] for v in found if "event_id" in v["ids"]] == [str(stray)]
    assert sum(data["counts"].values()) == 3


def test_an_event_left_unpublished_past_the_threshold_is_found(
    database_url: str, db: Conn, orders: list[str]
) -> None:
    stuck = history_command(db, orders[2], 1)
    db.execute(
        """UPDATE outbox SET published_at = NULL, created_at = now() - interval '90 seconds'
           WHERE command_id = %s""",
        (stuck,),
    )
    code, data = verdict(database_url)
    assert code == 1
    [late] = data["violations"]
    assert late["check"] == "outbox_drained"
    assert late["ids"]["order_number"] == orders[2]
    assert "limit 60s" in late["detail"]
    assert verdict(database_url, "--max-outbox-age", "120") == (
        0,
        {"passed": True, "counts": dict.fromkeys(data["counts"], 0), "violations": []},
    )


def test_inbox_outcomes_that_disagree_with_the_history_are_found(
    database_url: str, db: Conn, orders: list[str]
) -> None:
    rewritten = history_command(db, orders[0], 2)
    forgotten = history_command(db, orders[1], 3)
    phantom = str(uuid4())
    db.execute(
        """UPDATE processed_commands SET outcome = 'rejected', reason = 'invalid_transition'
           WHERE command_id = %s""",
        (rewritten,),
    )
    db.execute("DELETE FROM processed_commands WHERE command_id = %s", (forgotten,))
    db.execute(
        """INSERT INTO processed_commands (command_id, command_type, order_number, outcome,
               fingerprint, processed_at, last_seen_at)
           VALUES (%s, 'ChangeOrderStatus', %s, 'applied', 'x', now(), now())""",
        (phantom, orders[2]),
    )
    code, data = verdict(database_url)
    assert code == 1
    found = violations_of(data, "inbox_matches_history")
    assert sum(data["counts"].values()) == len(found) == 3, data
    details = {v["ids"]["command_id"]: v["detail"] for v in found}
    assert details[rewritten] == "command rejected has 1 history rows, not no history row"
    assert details[phantom] == "command applied has 0 history rows, not 1 history row"
    assert details[forgotten] == "history row v3 has no inbox entry for its command"
