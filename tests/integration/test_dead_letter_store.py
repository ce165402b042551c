"""The dead-letter store in PostgreSQL: idempotent inserts, and marks instead of deletes."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from worker.db import dead_letters
from worker.db.dead_letters import Selection
from worker.messaging.dead_letter_record import describe

Conn = psycopg.Connection[tuple[Any, ...]]


def record(body: bytes, reason: str = "malformed_json", failed: datetime | None = None) -> Any:
    moment = (failed or datetime.now(UTC)).isoformat()
    headers = {
        "x-dead-letter-reason": reason,
        "x-source-queue": "orders.status-worker",
        "x-dead-lettered-at": moment,
    }
    return describe(
        body,
        "orders.dead-letter",
        "order.create",
        {"application_headers": headers},
        delivery_limit=20,
    )


def test_a_message_stored_twice_is_one_row(db: Conn) -> None:
    first = record(b"{")
    dead_letters.store(db, [first, record(b"[")])
    dead_letters.store(db, [first])  # the queue delivered it again after a lost ack
    assert db.execute("SELECT count(*) FROM dead_letters").fetchone() == (2,)


def test_a_body_that_is_not_text_is_kept_byte_for_byte(db: Conn) -> None:
    body = bytes(range(256))
    dead_letters.store(db, [record(body)])
    [entry] = dead_letters.details(db, Selection())
    assert entry.body == body
    assert entry.body_text is None


def test_purging_marks_and_keeps_and_a_purged_entry_is_not_marked_replayed(db: Conn) -> None:
    old = datetime.now(UTC) - timedelta(days=10)
    dead_letters.store(db, [record(b"1", failed=old), record(b"2"), record(b"3", "unknown_type")])
    ids = [entry.id for entry in dead_letters.details(db, Selection())]

    assert dead_letters.purge(db, Selection(), "ops", older_than=timedelta(days=7)) == [ids[0]]
    assert dead_letters.purge(db, Selection(reason="malformed_json"), "ops") == [ids[1]]
    assert dead_letters.purge(db, Selection(ids=[ids[0]]), "ops") == []  # once is enough

    assert not dead_letters.mark_replayed(db, ids[0], "ops")
    assert dead_letters.mark_replayed(db, ids[2], "ops")
    states = [(e.id, e.state) for e in dead_letters.details(db, Selection())]
    assert states == [(ids[0], "purged"), (ids[1], "purged"), (ids[2], "replayed")]


def test_the_table_refuses_a_purge_without_who(db: Conn) -> None:
    dead_letters.store(db, [record(b"x")])
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE dead_letters SET state = 'purged', purged_at = now()")


def test_an_entry_links_to_the_entry_it_was_replayed_from_only_if_that_one_exists(
    db: Conn,
) -> None:
    dead_letters.store(db, [record(b"first")])
    [first] = dead_letters.details(db, Selection())
    again = replace(record(b"again"), replayed_from=first.id)
    forged = replace(record(b"forged"), replayed_from=first.id + 1000)

    dead_letters.store(db, [again, forged])

    links = {bytes(e.body): e.replayed_from for e in dead_letters.details(db, Selection())}
    assert links == {b"first": None, b"again": first.id, b"forged": None}
