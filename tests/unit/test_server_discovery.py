"""With CI=true a missing server fails the run; elsewhere the tests that need it skip."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import Servers, unreachable

ROOT = Path(__file__).resolve().parents[2]
NOWHERE = {
    "ORDERS_TEST_POSTGRES_URL": "postgresql://postgres@127.0.0.1:1/postgres",
    "ORDERS_TEST_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/%2F",
}
A_TEST_THAT_NEEDS_SERVERS = (
    "tests/integration/test_schema.py::test_statuses_have_their_labels_and_pending_is_initial"
)


def run_pytest(ci: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", A_TEST_THAT_NEEDS_SERVERS],
        cwd=ROOT,
        env={**os.environ, **NOWHERE, "CI": ci},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_unreachable_servers_are_each_described() -> None:
    problems = unreachable(
        Servers(NOWHERE["ORDERS_TEST_POSTGRES_URL"], NOWHERE["ORDERS_TEST_AMQP_URL"], "test")
    )
    assert len(problems) == 2
    assert problems[0].startswith("PostgreSQL at ")
    assert problems[1].startswith("RabbitMQ at ")


def test_in_ci_an_unreachable_server_fails_the_run() -> None:
    result = run_pytest("true")
    assert result.returncode == 1, result.stdout
    assert "servers unreachable" in result.stdout
    assert "1 error" in result.stdout


@pytest.mark.parametrize("ci", ["", "false"])
def test_outside_ci_an_unreachable_server_skips(ci: str) -> None:
    result = run_pytest(ci)
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
