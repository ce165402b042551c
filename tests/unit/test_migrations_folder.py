"""Applying no migrations must never look like success."""

from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from worker.config import REPO_MIGRATIONS
from worker.db.migrate import MigrationsMissing, read_migration_files, yoyo_url


@pytest.mark.parametrize("make_folder", [False, True])
def test_a_missing_or_empty_migrations_folder_is_refused(tmp_path: Path, make_folder: bool) -> None:
    folder = tmp_path / "migrations"
    if make_folder:
        folder.mkdir()
    with pytest.raises(MigrationsMissing, match="ORDERS_MIGRATIONS_DIR"):
        read_migration_files(folder)


def test_the_repository_migrations_are_found() -> None:
    assert [m.id for m in read_migration_files(REPO_MIGRATIONS)][:1] == ["0001_workflow"]


@pytest.mark.parametrize(
    ("database_url", "expected"),
    [
        (
            "postgresql://postgres@127.0.0.1:5432/orders",
            {"user": "postgres", "host": "127.0.0.1", "port": "5432"},
        ),
        (
            "host=/var/run/postgresql dbname=orders user=app password=s3cr%t",
            {"host": "/var/run/postgresql", "user": "app", "password": "s3cr%t"},
        ),
    ],
)
def test_any_libpq_connection_string_becomes_a_yoyo_url(
    database_url: str, expected: dict[str, str]
) -> None:
    url = urlsplit(yoyo_url(database_url))
    assert (url.scheme, url.path) == ("postgresql+psycopg", "/orders")
    assert dict(parse_qsl(url.query)) == expected
