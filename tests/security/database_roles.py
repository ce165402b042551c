"""Login roles made for one test, each a member of one of the project's group roles."""

from collections.abc import Iterator
from contextlib import contextmanager
from uuid import uuid4

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

GROUP_ROLES = ("order_status_worker", "order_status_reader", "order_status_api")


@contextmanager
def login_as(admin_url: str, database_url: str, group: str) -> Iterator[str]:
    """A database URL that logs in as a new role of the `group` role only; dropped afterwards."""
    name = f"order_status_test_{uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
                sql.Identifier(name), sql.Identifier(group)
            )
        )
    try:
        yield make_conninfo(database_url, user=name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            # A worker thread may still be closing its session.
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (name,),
            )
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
