"""`order-status dlq` against real servers: browse, group, replay, purge and export."""

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from tests.support.broker import QueueReader, message_count, publish_raw
from tests.support.commands import change_status, create_order, order_number
from tests.support.waiting import eventually
from worker.cli import main
from worker.config import Settings
from worker.messaging.topology import Topology
from worker.messaging.upstream import publish_command

Conn = psycopg.Connection[tuple[Any, ...]]
StartWorkers = Any
Invoke = Callable[..., Result]


@pytest.fixture
def dlq(settings: Settings) -> Invoke:
    """Run `order-status dlq ARGS...` in this process with the test's configuration."""
    env = {
        "ORDERS_DATABASE_URL": settings.database_url,
        "ORDERS_AMQP_URL": settings.amqp_url,
        "ORDERS_NAMESPACE": settings.namespace,
        "ORDERS_RETRY_DELAYS": settings.retry_delays,
    }
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, ["dlq", *args], env=env, catch_exceptions=False)

    return invoke


def stored_count(db: Conn) -> int:
    row = db.execute("SELECT count(*) FROM dead_letters").fetchone()
    return int(row[0]) if row else 0


def entry(db: Conn, entry_id: int) -> dict[str, Any]:
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        row = cur.execute("SELECT * FROM dead_letters WHERE id = %s", (entry_id,)).fetchone()
    assert row is not None
    return row


def inbox(db: Conn, command_id: Any) -> tuple[str, int] | None:
    row = db.execute(
        "SELECT outcome, deliveries FROM processed_commands WHERE command_id = %s", (command_id,)
    ).fetchone()
    return (row[0], row[1]) if row else None


def history(db: Conn, number: str) -> list[tuple[str | None, str]]:
    return [
        (row[0], row[1])
        for row in db.execute(
            "SELECT from_status, to_status FROM order_status_history"
            " WHERE order_number = %s ORDER BY version",
            (number,),
        ).fetchall()
    ]


def poison(settings: Settings, topology: Topology, body: bytes, **properties: Any) -> None:
    publish_raw(
        settings.amqp_url,
        topology.commands_exchange,
        properties.pop("routing_key", "order.status.change"),
        body,
        **{"content_type": "application/json", **properties},
    )


def listed(dlq: Invoke, *args: str) -> list[dict[str, Any]]:
    result = dlq("list", "--json", *args)
    assert result.exit_code == 0, result.output
    entries: list[dict[str, Any]] = json.loads(result.output)
    return entries


def test_replay_after_the_cause_is_fixed_applies_the_command_once_and_only_once(
    settings: Settings,
    topology: Topology,
    start_workers: StartWorkers,
    database_url: str,
    db: Conn,
    dlq: Invoke,
) -> None:
    start_workers(with_settings=settings.model_copy(update={"lock_timeout_ms": 50}))
    number = order_number()
    publish_command(settings.amqp_url, topology, create_order(number))
    eventually(lambda: len(history(db, number)) == 1)
    change = change_status(number, "in_progress")
    with psycopg.connect(database_url) as blocker:  # the cause: a lock held too long
        blocker.execute("SELECT 1 FROM orders WHERE order_number = %s FOR UPDATE", (number,))
        publish_command(settings.amqp_url, topology, change)
        [dead] = eventually(lambda: listed(dlq), timeout=30)
    assert dead["reason"] == "retries_exhausted"
    assert dead["state"] == "dead"

    dry = dlq("replay", "--id", str(dead["id"]), "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    [verdict] = json.loads(dry.output)["results"]
    assert verdict == {
        "id": dead["id"],
        "result": "would_replay",
        "queue": topology.status_worker_queue,
        "routing_key": "order.status.change",
        "decodes": True,
        "problem": None,
        "decision": "accepted",
        "explanation": "pending -> in_progress",
        "fails_again": False,
    }
    assert entry(db, dead["id"])["state"] == "dead"
    assert inbox(db, change.command_id) is None

    replayed = dlq("replay", "--id", str(dead["id"]), "--actor", "ops-alice")
    assert replayed.exit_code == 0, replayed.output
    assert replayed.output.startswith(
        f"replayed {dead['id']} to {topology.status_worker_queue} (order.status.change)"
    )
    eventually(lambda: inbox(db, change.command_id) == ("applied", 1))
    assert history(db, number) == [(None, "pending"), ("pending", "in_progress")]
    row = entry(db, dead["id"])
    assert (row["state"], row["replayed_by"], row["replay_count"]) == ("replayed", "ops-alice", 1)

    again = dlq("replay", "--id", str(dead["id"]))
    assert again.exit_code == 1
    assert "already replayed" in again.output
    assert dlq("replay", "--all").output.strip() == "nothing to replay"
    assert entry(db, dead["id"])["replay_count"] == 1

    forced = dlq("replay", "--id", str(dead["id"]), "--force")
    assert forced.exit_code == 0, forced.output
    eventually(lambda: inbox(db, change.command_id) == ("applied", 2))  # a repeat, no effect
    assert history(db, number) == [(None, "pending"), ("pending", "in_progress")]
    assert entry(db, dead["id"])["replay_count"] == 2
    assert stored_count(db) == 1


def rules_entry(
    settings: Settings, topology: Topology, events: QueueReader, db: Conn
) -> dict[str, Any]:
    """A genuine OrderCreated, stored as the rules worker dead-letters an event it cannot judge."""
    publish_command(settings.amqp_url, topology, create_order(order_number()))
    [created] = events.take(1)
    publish_raw(
        settings.amqp_url,
        topology.dead_letter_exchange,
        created.routing_key,
        created.body,
        content_type="application/json",
        type="OrderCreated",
        message_id=created.properties.message_id,
        headers={
            "x-dead-letter-reason": "apply_failed",
            "x-source-queue": topology.rules_queue,
            "x-original-exchange": topology.events_exchange,
            "x-original-routing-key": created.routing_key,
        },
    )
    [row] = eventually(lambda: stored(db, source_queue=topology.rules_queue))
    return dict(row)


def stored(db: Conn, **where: Any) -> list[dict[str, Any]]:
    clauses = " AND ".join(f"{column} = %({column})s" for column in where) or "true"
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            f"SELECT * FROM dead_letters WHERE {clauses} ORDER BY id", where
        ).fetchall()


def exhausted(settings: Settings, topology: Topology, command: Any) -> None:
    """Store `command` as the status worker dead-letters one whose retries ran out."""
    publish_raw(
        settings.amqp_url,
        topology.dead_letter_exchange,
        "order.status.change",
        command.model_dump_json().encode(),
        content_type="application/json",
        message_id=str(command.command_id),
        headers={
            "x-dead-letter-reason": "retries_exhausted",
            "x-source-queue": topology.status_worker_queue,
            "x-original-exchange": topology.commands_exchange,
            "x-original-routing-key": "order.status.change",
        },
    )


def queued(settings: Settings, topology: Topology) -> tuple[int, int]:
    return (
        message_count(settings.amqp_url, topology.status_worker_queue),
        message_count(settings.amqp_url, topology.rules_queue),
    )


def test_a_dry_run_reports_what_would_happen_and_changes_nothing(
    settings: Settings,
    topology: Topology,
    start_workers: StartWorkers,
    db: Conn,
    dlq: Invoke,
    events: QueueReader,
) -> None:
    running = start_workers()
    number = order_number()
    publish_command(settings.amqp_url, topology, create_order(number))
    poison(settings, topology, b"{oops", message_id="bad-json")
    stale = change_status(number, "completed").model_dump(mode="json")
    poison(  # decodes once its type is right, and the workflow refuses it
        settings, topology, json.dumps(stale).encode(), type="ChangeOrderStatusV9"
    )
    eventually(lambda: stored_count(db) == 2)
    event = rules_entry(settings, topology, events, db)
    # No consumer from here on: anything a dry run published would stay in its queue.
    assert running.stop()
    events.drain()  # the events of the orders created above
    queues_before = queued(settings, topology)
    before = db.execute("SELECT * FROM dead_letters ORDER BY id").fetchall()
    inbox_before = db.execute("SELECT * FROM processed_commands ORDER BY command_id").fetchall()

    result = dlq("replay", "--all", "--dry-run")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "does not decode (malformed_json" in lines[0]
    assert "does not decode (unknown_type" in lines[1]
    assert lines[2] == (
        f"would replay {event['id']}: decodes; judged_again (the rules worker would judge this "
        "OrderCreated again with the current rules; a rule that already fired for it does not "
        "fire twice)"
    )
    assert lines[3] == "would replay: 3"
    assert db.execute("SELECT * FROM dead_letters ORDER BY id").fetchall() == before
    assert (
        db.execute("SELECT * FROM processed_commands ORDER BY command_id").fetchall()
        == inbox_before
    )
    assert queued(settings, topology) == queues_before
    assert events.drain() == []


def test_a_replay_goes_to_the_queue_the_message_failed_in_whatever_its_headers_say(
    settings: Settings,
    topology: Topology,
    start_workers: StartWorkers,
    db: Conn,
    dlq: Invoke,
    events: QueueReader,
) -> None:
    """A producer's own `x-original-*` headers must not choose where an operator's replay goes."""
    running = start_workers()
    poison(
        settings,
        topology,
        b"{forged",
        message_id="forged",
        headers={
            "x-original-exchange": topology.events_exchange,
            "x-original-routing-key": "order.created",
            "x-source-queue": topology.rules_queue,
        },
    )
    [forged] = eventually(lambda: stored(db, message_id="forged"))
    assert (forged["original_exchange"], forged["original_routing_key"]) == (
        topology.commands_exchange,
        "order.status.change",
    )
    assert forged["source_queue"] == topology.status_worker_queue
    event = rules_entry(settings, topology, events, db)
    assert running.stop()
    assert queued(settings, topology) == (0, 0)

    result = dlq("replay", "--all", "--json", "--force")  # the forged one fails again

    assert result.exit_code == 0, result.output
    [first, second] = json.loads(result.output)["results"]
    assert {k: first[k] for k in ("id", "result", "queue", "routing_key", "decodes")} == {
        "id": forged["id"],
        "result": "replayed",
        "queue": topology.status_worker_queue,
        "routing_key": "order.status.change",
        "decodes": False,
    }
    assert {k: second[k] for k in ("id", "result", "queue", "routing_key", "decision")} == {
        "id": event["id"],
        "result": "replayed",
        "queue": topology.rules_queue,
        "routing_key": event["original_routing_key"],
        "decision": "judged_again",
    }
    # Each reached its own queue, once; no subscriber of the events saw the event again.
    eventually(lambda: queued(settings, topology) == (1, 1))
    assert events.drain() == []


def test_two_replays_at_once_publish_each_entry_once(
    settings: Settings, topology: Topology, start_workers: StartWorkers, db: Conn
) -> None:
    running = start_workers()
    for _ in range(30):  # commands that decode, so a replay needs no --force
        exhausted(settings, topology, change_status(order_number(), "in_progress"))
    eventually(lambda: stored_count(db) == 30)
    assert running.stop()
    env = {
        **os.environ,
        "ORDERS_DATABASE_URL": settings.database_url,
        "ORDERS_AMQP_URL": settings.amqp_url,
        "ORDERS_NAMESPACE": settings.namespace,
        "ORDERS_RETRY_DELAYS": settings.retry_delays,
    }
    command = [sys.executable, "-m", "worker", "dlq", "replay", "--all", "--json"]
    both = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in both]

    results = [outcome for out, _err in outputs for outcome in json.loads(out)["results"]]
    replayed = sorted(o["id"] for o in results if o["result"] == "replayed")
    assert len(replayed) == 30
    assert len(set(replayed)) == 30
    others = [o for o in results if o["result"] != "replayed"]
    assert {o["result"] for o in others} <= {"skipped", "refused"}
    assert db.execute(
        "SELECT count(*), min(replay_count), max(replay_count) FROM dead_letters"
    ).fetchone() == (30, 1, 1)
    eventually(lambda: queued(settings, topology) == (30, 0))


def test_a_purge_waits_for_a_replay_of_the_same_entry_and_a_replay_skips_a_held_one(
    settings: Settings,
    topology: Topology,
    start_workers: StartWorkers,
    database_url: str,
    db: Conn,
    dlq: Invoke,
) -> None:
    running = start_workers()
    poison(settings, topology, b"{held", message_id="held")
    [row] = eventually(lambda: stored(db))
    assert running.stop()

    with psycopg.connect(database_url) as other:  # stands in for a replay or purge under way
        other.execute("SELECT 1 FROM dead_letters WHERE id = %s FOR UPDATE", (row["id"],))
        skipped = dlq("replay", "--id", str(row["id"]))
        assert skipped.exit_code == 1
        assert skipped.output.startswith(f"skipped {row['id']}: another replay or a purge")
        assert message_count(settings.amqp_url, topology.status_worker_queue) == 0
        other.execute(
            "UPDATE dead_letters SET state = 'purged', purged_at = now(), purged_by = 'x'"
            " WHERE id = %s",
            (row["id"],),
        )
    refused = dlq("replay", "--id", str(row["id"]))
    assert refused.exit_code == 1
    assert refused.output.startswith(f"refused {row['id']}: purged")
    assert message_count(settings.amqp_url, topology.status_worker_queue) == 0


def test_stats_group_by_reason_and_queue_and_purge_leaves_a_trace(
    settings: Settings, topology: Topology, start_workers: StartWorkers, db: Conn, dlq: Invoke
) -> None:
    start_workers()
    for body in (b"not json", b"[1,"):
        poison(settings, topology, body)
    poison(settings, topology, b"{}", type="RenameOrder")
    poison(settings, topology, b'{"order_number": "SO-X-1"}')
    eventually(lambda: stored_count(db) == 4)

    groups = json.loads(dlq("stats", "--json").output)
    assert [(g["reason"], g["source_queue"], g["dead"]) for g in groups] == [
        ("malformed_json", topology.status_worker_queue, 2),
        ("schema_violation", topology.status_worker_queue, 1),
        ("unknown_type", topology.status_worker_queue, 1),
    ]
    [schema] = listed(dlq, "--order", "SO-X-1")
    assert schema["reason"] == "schema_violation"
    assert set(schema) >= {
        "id",
        "reason",
        "source_queue",
        "routing_key",
        "message_id",
        "attempts",
        "first_failed_at",
        "last_failed_at",
        "state",
    }
    malformed = listed(dlq, "--reason", "malformed_json")
    assert len(malformed) == 2

    refused = dlq("purge", "--reason", "malformed_json")
    assert refused.exit_code == 2
    assert len(listed(dlq, "--state", "dead")) == 4
    purged = dlq("purge", "--reason", "malformed_json", "--yes", "--actor", "ops-bob")
    assert purged.exit_code == 0, purged.output

    for item in malformed:
        row = entry(db, item["id"])
        assert (row["state"], row["purged_by"]) == ("purged", "ops-bob")
        assert row["purged_at"] is not None
        assert bytes(row["body"]) in {b"not json", b"[1,"}
    assert stored_count(db) == 4
    groups = json.loads(dlq("stats", "--json").output)
    assert [(g["reason"], g["dead"]) for g in groups] == [
        ("schema_violation", 1),
        ("unknown_type", 1),
    ]
    everything = json.loads(dlq("stats", "--all", "--json").output)
    assert ("malformed_json", 0, 2) in [(g["reason"], g["dead"], g["purged"]) for g in everything]
    again = dlq("replay", "--id", str(malformed[0]["id"]))
    assert again.exit_code == 1
    assert "purged" in again.output
    older = dlq("purge", "--older-than", "1d", "--yes")
    assert older.output.strip() == "purged 0: -"


def test_show_and_export_keep_every_field_and_the_body_byte_for_byte(
    settings: Settings, topology: Topology, start_workers: StartWorkers, db: Conn, dlq: Invoke
) -> None:
    start_workers()
    body = '{"order_number": "SO-导出-1", "to_status": 7}'.encode()
    poison(settings, topology, body, message_id="m-export", headers={"tenant": "acme"})
    poison(settings, topology, b"\xff\xfe not utf-8", content_type="application/octet-stream")
    eventually(lambda: stored_count(db) == 2)
    [first, second] = sorted(listed(dlq), key=lambda item: item["id"])

    shown = dlq("show", str(first["id"]))
    assert shown.exit_code == 0, shown.output
    assert "schema_violation" in shown.output
    assert "tenant" in shown.output
    assert '"order_number": "SO-导出-1"' in shown.output  # pretty-printed, one field a line
    detail = json.loads(dlq("show", str(second["id"]), "--json").output)
    assert base64.b64decode(detail["body_base64"]) == b"\xff\xfe not utf-8"
    assert detail["body_text"] is None
    assert detail["reason"] == "unsupported_content_type"
    assert dlq("show", "999999").exit_code == 5

    exported = dlq("export")
    assert exported.exit_code == 0, exported.output
    lines = [json.loads(line) for line in exported.output.splitlines()]
    assert [line["id"] for line in lines] == [first["id"], second["id"]]
    assert base64.b64decode(lines[0]["body_base64"]) == body
    assert lines[0]["headers"]["tenant"] == "acme"
    assert lines[0]["message_id"] == "m-export"
    assert {"reason", "detail", "exchange", "routing_key", "properties", "state"} <= set(lines[0])
    only = dlq("export", "--reason", "unsupported_content_type").output.splitlines()
    assert [json.loads(line)["id"] for line in only] == [second["id"]]


def test_a_replay_of_many_keeps_its_rate_and_marks_each_one(
    settings: Settings, topology: Topology, start_workers: StartWorkers, db: Conn, dlq: Invoke
) -> None:
    """Malformed bodies replayed unchanged fail again: each comes back as a new entry."""
    start_workers()
    for index in range(20):
        poison(settings, topology, b"{" * (index + 1), message_id=f"m-{index}")
    eventually(lambda: stored_count(db) == 20)
    assert len(listed(dlq, "--since", "1h", "--limit", "100")) == 20
    assert listed(dlq, "--until", "2000-01-01") == []

    started = time.monotonic()
    result = dlq("replay", "--all", "--rate", "100", "--actor", "ops-carol", "--force")
    took = time.monotonic() - started

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "replayed: 20"
    assert took >= 19 / 100
    assert db.execute(
        "SELECT count(*) FROM dead_letters WHERE state = 'replayed' AND replayed_by = 'ops-carol'"
    ).fetchone() == (20,)
    eventually(lambda: stored_count(db) == 40)
    again = listed(dlq, "--state", "dead", "--limit", "100")
    assert sorted(item["message_id"] for item in again) == sorted(f"m-{i}" for i in range(20))


def test_show_and_list_print_escape_sequences_as_text(
    settings: Settings, topology: Topology, start_workers: StartWorkers, db: Conn, dlq: Invoke
) -> None:
    """A producer's ESC or CSI must not recolour, retitle or clear the operator's terminal."""
    start_workers()
    poison(
        settings,
        topology,
        b'{"order_number": "SO-\x1b[2J"} \x1b]0;owned\x07',
        message_id="m-\x1b[31m",
        type="Evil\x1b[8m",
        headers={"note": "\x1b[5mblink"},
    )
    [row] = eventually(lambda: stored(db))

    shown = dlq("show", str(row["id"]))
    listed_text = dlq("list")
    replayed = dlq("replay", "--id", str(row["id"]), "--dry-run")

    for result in (shown, listed_text, replayed):
        assert "\x1b" not in result.output, result.output
    assert "m-\\x1b[31m" in shown.output
    assert "\\x1b]0;owned\\x07" in shown.output  # the body, not JSON, printed as it is
    assert "Evil\\x1b[8m" in shown.output  # in the detail and the type
    assert "\\x1b[31m" in listed_text.output
