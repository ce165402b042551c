"""Apply the SQL migrations in migrations/ with yoyo, creating the database if needed.

The CLI (`order-status migrate`), the tests and docker-compose all go through
`migrate()`, so the schema has one path into every database. Yoyo holds a lock
while it works, so two starters never apply the same migration twice.
"""

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from yoyo import get_backend, read_migrations

from worker.errors import DATABASE_SETTING, Misconfigured

log = logging.getLogger(__name__)

DATABASE_EXISTS = "SELECT 1 FROM pg_database WHERE datname = %(name)s"
DROP_DATABASE = "DROP DATABASE IF EXISTS {} WITH (FORCE)"


class MigrationsMissing(Exception):
    """The migrations folder is missing or empty: applying nothing would look like success."""


def read_migration_files(migrations_dir: Path) -> Any:
    """Read the migrations, refusing a folder that holds none."""
    if not migrations_dir.is_dir() or not any(migrations_dir.glob("*.sql")):
        raise MigrationsMissing(
            f"no migrations in {migrations_dir}; run from a checkout of the project "
            "or set ORDERS_MIGRATIONS_DIR"
        )
    return read_migrations(str(migrations_dir))


def yoyo_url(database_url: str) -> str:
    """Turn any libpq connection string (URL or key=value) into yoyo's psycopg 3 URL.

    Every parameter but the database name travels as a query argument, which
    yoyo hands to psycopg.connect as it is: sockets, ports and options survive.
    """
    params = {key: str(value) for key, value in conninfo_to_dict(database_url).items()}
    dbname = params.pop("dbname", "")
    if not dbname:
        raise Misconfigured(DATABASE_SETTING, "the database URL names no database")
    return f"postgresql+psycopg:///{quote(dbname, safe='')}?{urlencode(params)}"


def create_database_if_missing(database_url: str) -> bool:
    """Create the database the URL names, connecting to `postgres` to do it; True if created.

    The database itself is tried first, so a role that may reach only its own
    database (as on many managed servers) can still migrate it.
    """
    params = conninfo_to_dict(database_url)
    name = str(params.get("dbname") or "")
    if not name:
        raise Misconfigured(DATABASE_SETTING, "the database URL names no database")
    try:
        psycopg.connect(database_url, connect_timeout=5).close()
    except psycopg.OperationalError:
        pass  # missing, or unreachable: the maintenance database tells which
    else:
        return False
    maintenance = make_conninfo(database_url, dbname="postgres")
    with psycopg.connect(maintenance, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute(DATABASE_EXISTS, {"name": name}).fetchone()
        if exists:
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except errors.DuplicateDatabase:
            return False  # another starter created it first
    log.info("created database", extra={"database": name})
    return True


def drop_database(database_url: str) -> bool:
    """Drop the database the URL names, ending its sessions; True if it existed.

    Connects to the `postgres` maintenance database, as creating it does.
    """
    name = str(conninfo_to_dict(database_url).get("dbname") or "")
    if not name:
        raise ValueError(f"the database URL names no database: {database_url!r}")
    maintenance = make_conninfo(database_url, dbname="postgres")
    with psycopg.connect(maintenance, autocommit=True, connect_timeout=5) as conn:
        existed = conn.execute(DATABASE_EXISTS, {"name": name}).fetchone() is not None
        conn.execute(sql.SQL(DROP_DATABASE).format(sql.Identifier(name)))
    log.info("dropped database", extra={"database": name})
    return existed


def pending_migrations(database_url: str, migrations_dir: Path) -> list[str]:
    """List the ids of migrations not yet applied to the database."""
    migrations = read_migration_files(migrations_dir)
    backend = get_backend(yoyo_url(database_url))
    try:
        return [m.id for m in backend.to_apply(migrations)]
    finally:
        backend.connection.close()


def migrate(database_url: str, migrations_dir: Path) -> list[str]:
    """Bring the database up to date; return the ids of the migrations applied now."""
    migrations = read_migration_files(migrations_dir)
    create_database_if_missing(database_url)
    backend = get_backend(yoyo_url(database_url))
    try:
        with backend.lock():
            to_apply = backend.to_apply(migrations)
            backend.apply_migrations(to_apply)
        applied = [m.id for m in to_apply]
    finally:
        backend.connection.close()
    for migration_id in applied:
        log.info("applied migration", extra={"migration": migration_id})
    return applied
