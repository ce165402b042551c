"""`order-status dlq` as a new operator meets it, against real servers.

A reused command id is no delivery of the first command; an entry that fails
again after a replay names the entry it came from; list shows the detail,
show keeps a huge body short, and an unknown reason is refused in one line.
"""

import json
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from tests.support.commands import change_status, create_order, order_number
from tests.support.waiting import eventually
from worker.cli import main
from worker.config import Settings
from worker.db import dead_letters
from worker.messaging.dead_letter_record import describe
from worker.messaging.topology import Topology
from worker.messaging.upstream import publish_command

Conn = psycopg.Connection[tuple[Any, ...]]
StartWorkers = Any


def run_cli(settings: Settings, *args: str, columns: int = 160) -> Result:
    env = {
        "COLUMNS": str(columns),
        "ORDERS_DATABASE_URL": settings.database_url,
        "ORDERS_AMQP_URL": settings.amqp_url,
        "ORDERS_NAMESPACE": settings.namespace,
        "ORDERS_RETRY_DELAYS": settings.retry_delays,
    }
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def seen(db: Conn, command_id: Any) -> tuple[Any, ...] | None:
    return db.execute(
        "SELECT outcome, deliveries, last_seen_at FROM processed_commands WHERE command_id = %s",
        (command_id,),
    ).fetchone()


def entries(db: Conn) -> list[dict[str, Any]]:
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute("SELECT * FROM dead_letters ORDER BY id").fetchall()


def test_a_reused_command_id_is_dead_lettered_without_counting_as_a_delivery_of_the_first(
    settings: Settings, topology: Topology, start_workers: StartWorkers, db: Conn
) -> None:
    start_workers()
    number = order_number()
    publish_command(settings.amqp_url, topology, create_order(number))
    original = change_status(number, "in_progress")
    publish_command(settings.amqp_url, topology, original)
    first = eventually(lambda: seen(db, original.command_id))
    assert first[:2] == ("applied", 1)

    reused = change_status(number, "cancelled", command_id=original.command_id)
    publish_command(settings.amqp_url, topology, reused)

    [entry] = eventually(lambda: entries(db), timeout=30)
    assert entry["reason"] == "command_id_reused"
    assert json.loads(bytes(entry["body"]))["to_status"] == "cancelled"
    assert seen(db, original.command_id) == first  # deliveries and last_seen_at as they were
    shown = json.loads(
        run_cli(settings, "commands", "show", str(original.command_id), "--json").output
    )
    assert shown["deliveries"] == 1

    # Replaying it (it can only fail again, so it must be forced) counts nothing either,
    # and the entry it makes names the one it was replayed from.
    refused = run_cli(settings, "dlq", "replay", "--id", str(entry["id"]))
    assert refused.exit_code == 1
    assert refused.output.startswith(f"refused {entry['id']}: it would fail again: decodes; ")
    assert "command_id_reused" in refused.output
    forced = run_cli(settings, "dlq", "replay", "--id", str(entry["id"]), "--force")
    assert forced.exit_code == 0, forced.output
    assert "warning: it will fail again" in forced.output

    [_, again] = eventually(lambda: entries(db) if len(entries(db)) == 2 else None, timeout=30)
    assert (again["reason"], again["replayed_from"]) == ("command_id_reused", entry["id"])
    assert seen(db, original.command_id) == first
    detail = json.loads(run_cli(settings, "dlq", "show", str(again["id"]), "--json").output)
    assert detail["replayed_from"] == entry["id"]
    text = run_cli(settings, "dlq", "show", str(again["id"])).output
    [line] = [line for line in text.splitlines() if "replayed from" in line]
    assert f"{entry['id']} (this message failed again after that entry was replayed)" in line


def store(db: Conn, body: bytes, reason: str, detail: str) -> None:
    headers = {
        "x-dead-letter-reason": reason,
        "x-dead-letter-detail": detail,
        "x-source-queue": "orders.status-worker",
        "x-dead-lettered-at": datetime.now(UTC).isoformat(),
    }
    record = describe(
        body,
        "orders.dead-letter",
        "order.create",
        {"application_headers": headers},
        delivery_limit=20,
    )
    dead_letters.store(db, [record])


def test_show_keeps_a_large_body_short_unless_full(settings: Settings, db: Conn) -> None:
    body = json.dumps({"order_number": "SO-BIG", "note": "x" * 20_000}).encode()
    store(db, body, "schema_violation", "CreateOrder is invalid")
    [entry] = entries(db)

    short = run_cli(settings, "dlq", "show", str(entry["id"]))
    full = run_cli(settings, "dlq", "show", str(entry["id"]), "--full")

    assert short.exit_code == full.exit_code == 0
    assert "x" * 20_000 not in short.output
    assert "more characters; --full shows the whole body" in short.output
    assert len(short.output) < 10_000
    assert "x" * 20_000 in full.output
    assert "--full shows" not in full.output


def test_list_shows_the_detail_shortened_and_json_keeps_all_of_it(
    settings: Settings, db: Conn
) -> None:
    detail = "CreateOrder is invalid: amount: Input should be greater than 0 " + "y" * 300
    store(db, b"{}", "schema_violation", detail)

    listed = run_cli(settings, "dlq", "list")
    narrow = run_cli(settings, "dlq", "list", columns=100)
    as_json = json.loads(run_cli(settings, "dlq", "list", "--json").output)

    [row] = [line for line in listed.output.splitlines() if "schema_violation" in line]
    assert "CreateOrder is invalid: amount" in row
    assert "…" in row
    assert "y" * 100 not in listed.output
    [narrow_row] = [line for line in narrow.output.splitlines() if "│ dead" in line]
    assert "CreateOrde" in narrow_row  # it gives way, one line, and fits
    assert len(narrow_row) <= 100
    assert as_json[0]["detail"] == detail


@pytest.mark.parametrize("command", [["list"], ["replay", "--dry-run"], ["purge", "--yes"]])
def test_an_unknown_reason_is_refused_in_one_line_naming_the_known_ones(
    settings: Settings, db: Conn, command: list[str]
) -> None:
    store(db, b"{", "legacy_reason", "from an older release")

    result = run_cli(settings, "dlq", *command, "--reason", "malformed")

    assert result.exit_code == 2
    [line] = result.output.splitlines()
    assert line.startswith("Error: --reason: unknown reason 'malformed'; known reasons: ")
    for known in ("malformed_json", "command_id_reused", "delivery_limit", "legacy_reason"):
        assert known in line
    assert run_cli(settings, "dlq", "list", "--reason", "legacy_reason").exit_code == 0


def test_a_purge_keeps_who_when_and_why(settings: Settings, db: Conn) -> None:
    store(db, b"{", "malformed_json", "body is not valid JSON")
    [entry] = entries(db)

    purged = run_cli(
        settings, "dlq", "purge", "--id", str(entry["id"]), "--yes", "--actor", "ops-bob",
        "--note", "test data from the load run",
    )  # fmt: skip

    assert purged.exit_code == 0, purged.output
    detail = json.loads(run_cli(settings, "dlq", "show", str(entry["id"]), "--json").output)
    assert (detail["state"], detail["purged_by"], detail["purge_note"]) == (
        "purged",
        "ops-bob",
        "test data from the load run",
    )
    shown = run_cli(settings, "dlq", "show", str(entry["id"])).output
    [line] = [line for line in shown.splitlines() if "by ops-bob" in line]
    assert line.split("│")[1].strip() == "purged"
    assert "by ops-bob: test data from the load run" in line
    assert len(entries(db)) == 1
