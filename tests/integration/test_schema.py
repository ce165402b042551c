"""The schema the migrations build: workflow data, append-only history, constraints."""

from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.support.servers import Servers
from tests.support.workflow_spec import ALL_PAIRS, ALLOWED, STATUSES
from worker.config import REPO_MIGRATIONS, Settings
from worker.db.migrate import create_database_if_missing, migrate, pending_migrations
from worker.db.workflow_store import SchemaMissing, load_workflow

Conn = psycopg.Connection[tuple[Any, ...]]


def test_migrate_creates_the_database_and_is_idempotent(servers: Servers) -> None:
    name = f"orders_test_migrate_{uuid4().hex[:8]}"
    url = make_conninfo(servers.postgres_url, dbname=name)
    try:
        applied = migrate(url, REPO_MIGRATIONS)
        assert applied == sorted(path.stem for path in Path(REPO_MIGRATIONS).glob("*.sql"))
        assert migrate(url, REPO_MIGRATIONS) == []
        assert pending_migrations(url, REPO_MIGRATIONS) == []
    finally:
        with psycopg.connect(servers.postgres_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrate_reaches_only_its_own_database_once_it_exists(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A role allowed into its own database only (as on managed servers) can migrate."""
    url = settings.database_url
    reached: list[str] = []
    real_connect = psycopg.connect

    def recording_connect(conninfo: str = "", **kwargs: Any) -> Any:
        reached.append(str(conninfo_to_dict(conninfo).get("dbname")))
        return real_connect(conninfo, **kwargs)

    monkeypatch.setattr(psycopg, "connect", recording_connect)
    assert create_database_if_missing(url) is False
    assert reached == [conninfo_to_dict(url)["dbname"]]


def test_workers_refuse_an_unmigrated_database(servers: Servers) -> None:
    with (
        psycopg.connect(servers.postgres_url) as conn,
        pytest.raises(SchemaMissing, match="migrate"),
    ):
        load_workflow(conn)


@pytest.mark.parametrize(("from_status", "to_status"), ALL_PAIRS)
def test_the_stored_workflow_is_the_promised_one(
    db: Conn, from_status: str, to_status: str
) -> None:
    workflow = load_workflow(db)
    assert workflow.allows(from_status, to_status) == (to_status in ALLOWED[from_status])


def test_statuses_have_their_labels_and_pending_is_initial(db: Conn) -> None:
    workflow = load_workflow(db)
    assert list(workflow.statuses) == STATUSES
    assert workflow.initial == "pending"


def test_a_second_initial_status_is_refused(db: Conn) -> None:
    with pytest.raises(errors.UniqueViolation):
        db.execute("UPDATE order_statuses SET is_initial = true WHERE code = 'completed'")


def _insert_order_with_history(db: Conn) -> str:
    number = f"SO-{uuid4().hex[:8]}"
    db.execute(
        """INSERT INTO orders VALUES (%s, 'C-1', 'Acme', 'vip', 10, 'CNY', '2026-11-01',
           'pending', 1, 'fp', now(), now())""",
        (number,),
    )
    db.execute(
        """INSERT INTO order_status_history (order_number, from_status, to_status, version,
           actor, changed_at, command_id) VALUES (%s, NULL, 'pending', 1, 'a', now(), %s)""",
        (number, uuid4()),
    )
    return number


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE order_status_history SET actor = 'mallory'",
        "DELETE FROM order_status_history",
        "TRUNCATE order_status_history CASCADE",
    ],
)
def test_history_is_append_only(db: Conn, statement: str) -> None:
    _insert_order_with_history(db)
    with pytest.raises(errors.RestrictViolation, match="append-only"):
        db.execute(statement)
    assert db.execute("SELECT count(*) FROM order_status_history").fetchone() == (1,)


def test_a_second_history_row_for_the_same_version_is_impossible(db: Conn) -> None:
    number = _insert_order_with_history(db)
    with pytest.raises(errors.UniqueViolation):
        db.execute(
            """INSERT INTO order_status_history (order_number, from_status, to_status, version,
               actor, changed_at, command_id) VALUES (%s, NULL, 'pending', 1, 'b', now(), %s)""",
            (number, uuid4()),
        )


def test_the_inbox_requires_a_reason_exactly_for_rejections(db: Conn) -> None:
    insert = """INSERT INTO processed_commands (command_id, command_type, order_number, outcome,
                reason, fingerprint, processed_at, last_seen_at)
                VALUES (%s, 'ChangeOrderStatus', 'SO-1', %s, %s, 'fp', now(), now())"""
    with pytest.raises(errors.CheckViolation):
        db.execute(insert, (uuid4(), "rejected", None))
    with pytest.raises(errors.CheckViolation):
        db.execute(insert, (uuid4(), "applied", "unknown_order"))
    with pytest.raises(errors.CheckViolation):
        db.execute(insert, (uuid4(), "exploded", None))


@pytest.mark.parametrize("amount", ["1.23456", "100000000000000", "-1"])
def test_amounts_beyond_the_contract_are_refused(db: Conn, amount: str) -> None:
    with pytest.raises(errors.CheckViolation):
        db.execute(
            """INSERT INTO orders VALUES ('SO-X', 'C-1', 'Acme', 'vip', %s::numeric, 'CNY',
               '2026-11-01', 'pending', 1, 'fp', now(), now())""",
            (amount,),
        )


def test_amounts_keep_the_scale_they_were_sent_with(db: Conn) -> None:
    db.execute(
        """INSERT INTO orders VALUES ('SO-Y', 'C-1', 'Acme', 'vip', 20000.00, 'CNY',
           '2026-11-01', 'pending', 1, 'fp', now(), now())"""
    )
    assert db.execute("SELECT amount::text FROM orders").fetchone() == ("20000.00",)
