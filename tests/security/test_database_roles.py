"""The PostgreSQL group roles of migration 0009: each does its job, and no more.

Each test logs in as a fresh role that is a member of one group role only, in a
database migrated as usual, and shows what is allowed and what is refused.
"""

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from contracts import COMMANDS_BY_TYPE
from tests.security.database_roles import GROUP_ROLES, login_as
from tests.support.broker import QueueReader, publish_raw
from tests.support.commands import create_order, order_number
from tests.support.servers import Servers
from tests.support.waiting import eventually
from worker.config import REPO_EXAMPLE_RULES, REPO_MIGRATIONS, Settings
from worker.db.migrate import migrate
from worker.messaging.topology import Topology
from worker.messaging.upstream import publish_command

Conn = psycopg.Connection[tuple[Any, ...]]
StartWorkers = Any


@pytest.fixture
def connect_as(servers: Servers, database_url: str) -> Iterator[Callable[[str], Conn]]:
    """Open a connection as a new member of a group role; everything is dropped afterwards."""
    with ExitStack() as stack:

        def connect(group: str) -> Conn:
            url = stack.enter_context(login_as(servers.postgres_url, database_url, group))
            return stack.enter_context(psycopg.connect(url, autocommit=True))

        yield connect


def seed(db: Conn) -> str:
    """One order with a history row, and one dead-letter entry; return the order number."""
    number = order_number()
    db.execute(
        """INSERT INTO orders (order_number, customer_id, customer_name, customer_type, amount,
               currency, order_date, status, version, creation_fingerprint, created_at,
               updated_at)
           VALUES (%s, 'C-1', 'Acme', 'enterprise', 10, 'CNY', '2026-11-20', 'pending', 1,
               'f', now(), now())""",
        (number,),
    )
    db.execute(
        """INSERT INTO order_status_history (order_number, to_status, version, actor,
               changed_at, command_id)
           VALUES (%s, 'pending', 1, 'test', now(), gen_random_uuid())""",
        (number,),
    )
    db.execute(
        """INSERT INTO dead_letters (fingerprint, reason, original_exchange,
               original_routing_key, properties, headers, body, attempts, first_failed_at,
               last_failed_at)
           VALUES ('fp', 'undecodable', 'x', 'y', '{}', '{}', 'secret body', 1, now(), now())"""
    )
    return number


def refused(conn: Conn, statement: str, *params: Any) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement, params or None)


def test_the_group_roles_exist_without_login(db: Conn) -> None:
    rows = db.execute(
        "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY(%s) ORDER BY rolname",
        (list(GROUP_ROLES),),
    ).fetchall()
    assert rows == [(name, False) for name in sorted(GROUP_ROLES)]


def test_the_reader_reads_but_writes_nothing_and_never_sees_a_dead_letter_body(
    db: Conn, connect_as: Callable[[str], Conn]
) -> None:
    number = seed(db)
    reader = connect_as("order_status_reader")
    assert reader.execute("SELECT status FROM orders WHERE order_number = %s", (number,)).fetchone()
    assert reader.execute("SELECT reason, headers FROM dead_letters").fetchall() == [
        ("undecodable", {})
    ]
    refused(reader, "SELECT body FROM dead_letters")
    refused(reader, "SELECT * FROM dead_letters")
    refused(reader, "INSERT INTO orders SELECT * FROM orders")
    refused(reader, "UPDATE orders SET status = 'completed' WHERE order_number = %s", number)
    refused(reader, "DELETE FROM processed_commands")
    refused(reader, "SELECT * FROM _yoyo_migration")


def test_the_worker_cannot_rewrite_history_or_drop_anything(
    db: Conn, connect_as: Callable[[str], Conn]
) -> None:
    number = seed(db)
    worker = connect_as("order_status_worker")
    assert worker.execute("SELECT body FROM dead_letters").fetchone() == (b"secret body",)
    refused(worker, "DELETE FROM order_status_history WHERE order_number = %s", number)
    refused(
        worker, "UPDATE order_status_history SET actor = 'forged' WHERE order_number = %s", number
    )
    refused(worker, "TRUNCATE order_status_history")
    refused(worker, "DELETE FROM orders WHERE order_number = %s", number)
    refused(worker, "UPDATE orders SET customer_name = 'forged' WHERE order_number = %s", number)
    refused(worker, "UPDATE dead_letters SET body = 'forged'")
    refused(worker, "DELETE FROM dead_letters")
    refused(worker, "INSERT INTO order_statuses VALUES ('forged', 'F', 'F', 99, false)")
    refused(worker, "CREATE TABLE stolen (x int)")
    # The trigger of 0002 is still there for whoever owns the table.
    with pytest.raises(errors.RestrictViolation):
        db.execute("DELETE FROM order_status_history WHERE order_number = %s", (number,))


def test_the_api_reads_orders_and_outcomes_only(
    db: Conn, connect_as: Callable[[str], Conn]
) -> None:
    number = seed(db)
    api = connect_as("order_status_api")
    assert api.execute(
        "SELECT count(*) FROM order_status_history WHERE order_number = %s", (number,)
    ).fetchone() == (1,)
    assert api.execute("SELECT count(*) FROM processed_commands").fetchone() == (0,)
    refused(api, "UPDATE orders SET status = 'completed' WHERE order_number = %s", number)
    refused(api, "INSERT INTO processed_commands SELECT * FROM processed_commands")
    refused(api, "SELECT reason FROM dead_letters")
    refused(api, "SELECT payload FROM outbox")


def test_the_workers_run_the_whole_flow_as_the_worker_role(
    servers: Servers,
    settings: Settings,
    topology: Topology,
    events: QueueReader,
    start_workers: StartWorkers,
    database_url: str,
    db: Conn,
) -> None:
    with login_as(servers.postgres_url, database_url, "order_status_worker") as worker_url:
        as_worker = settings.model_copy(
            update={"database_url": worker_url, "rules_file": REPO_EXAMPLE_RULES}
        )
        running = start_workers(with_settings=as_worker)
        number = order_number()
        publish_command(settings.amqp_url, topology, create_order(number, amount="20000.00"))
        create_key = COMMANDS_BY_TYPE["CreateOrder"].routing_key
        publish_raw(settings.amqp_url, topology.commands_exchange, create_key, b"not json")

        # Registered, then sent to review by a rule: every table the flow writes.
        seen = events.take_until(
            lambda got: {"order.status.changed", "task.created"} <= {e.routing_key for e in got}
        )
        assert seen[0].routing_key == "order.created"
        assert eventually(lambda: db.execute("SELECT title FROM tasks").fetchall()) == [
            ("审核大额订单",)
        ]
        stored = eventually(lambda: db.execute("SELECT reason FROM dead_letters").fetchall())
        assert len(stored) == 1
        assert running.stop(), "a worker failed as the worker role; see the log above"


def test_a_database_migrated_where_the_roles_exist_gets_its_grants(
    servers: Servers, database_url: str
) -> None:
    fresh = make_conninfo(database_url, dbname=f"orders_test_roles_{uuid4().hex[:8]}")
    try:
        applied = migrate(fresh, REPO_MIGRATIONS)
        assert "0009_roles" in applied
        assert migrate(fresh, REPO_MIGRATIONS) == []
        with psycopg.connect(fresh) as conn:
            granted = conn.execute(
                """SELECT has_table_privilege('order_status_worker', 'outbox', 'INSERT'),
                          has_table_privilege('order_status_worker', 'outbox', 'DELETE'),
                          has_column_privilege('order_status_reader', 'dead_letters', 'body',
                                               'SELECT')"""
            ).fetchone()
        assert granted == (True, False, False)
    finally:
        with psycopg.connect(servers.postgres_url, autocommit=True) as admin:
            name = str(conninfo_to_dict(fresh)["dbname"])
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def test_every_table_is_granted_to_the_worker_and_the_reader(db: Conn) -> None:
    """A migration that adds a table must say who may use it."""
    ungranted = db.execute(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v')
             AND c.relname NOT LIKE %(yoyo)s
             AND NOT (has_table_privilege('order_status_worker', c.oid, 'SELECT')
                      AND has_any_column_privilege('order_status_reader', c.oid, 'SELECT'))""",
        {"yoyo": "%yoyo%"},
    ).fetchall()
    assert ungranted == []
