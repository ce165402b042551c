"""Fixtures of the integration tests (PostgreSQL only)."""

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest


@pytest.fixture
def worker_conn(database_url: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """A worker's kind of connection: not autocommit."""
    with psycopg.connect(database_url) as conn:
        yield conn
