"""Passwords in the connection strings never reach output, `--json` output, errors or logs.

Each case runs the command line with a password in ORDERS_DATABASE_URL and
ORDERS_AMQP_URL and a server that refuses or cannot be reached, and searches
everything it wrote for the password, as written in the URL and decoded. The
workers run in a process of their own, so their real log output is searched.
"""

import os
import signal
import subprocess
import sys
import time
from urllib.parse import quote
from uuid import uuid4

import pytest
from click.testing import CliRunner

from tests.support.servers import Servers
from worker.cli import main
from worker.redaction import MASK, redact, secrets_in

PASSWORD = f"Zq7!{uuid4().hex[:12]}"
"""Percent-encoded in the URLs: both forms must stay hidden."""
IN_URL = quote(PASSWORD, safe="")

CLOSED_PORT = 1
DATABASE_URLS = {
    "closed port": f"postgresql://orders:{IN_URL}@127.0.0.1:{CLOSED_PORT}/orders",
    "unknown role": f"postgresql://nobody_{uuid4().hex[:6]}:{IN_URL}@127.0.0.1:5432/orders",
    "unparsable": f"postgresql//orders:{IN_URL}@127.0.0.1:5432/orders",
    "key=value": f"host=127.0.0.1 port={CLOSED_PORT} dbname=orders password={IN_URL}",
}
AMQP_URLS = {
    "wrong password": f"amqp://guest:{IN_URL}@127.0.0.1:5672/%2F",
    "closed port": f"amqp://guest:{IN_URL}@127.0.0.1:{CLOSED_PORT}/%2F",
    "unknown host": f"amqp://guest:{IN_URL}@no-such-host.invalid:5672/%2F",
}
COMMANDS = [
    ["migrate"],
    ["orders", "list", "--json"],
    ["dlq", "list", "--json"],
    ["declare"],
    ["publish", "change-status", "SO-1", "--to", "in_progress", "--actor", "a", "--json"],
]


def run_cli(args: list[str], database_url: str, amqp_url: str) -> str:
    """Run `order-status ARGS` and return everything it wrote, stdout and stderr."""
    result = CliRunner().invoke(
        main,
        args,
        env={
            "ORDERS_DATABASE_URL": database_url,
            "ORDERS_AMQP_URL": amqp_url,
            "ORDERS_NAMESPACE": f"secrets-{uuid4().hex[:6]}",
        },
    )
    assert result.exit_code != 0, f"{args} succeeded against a refusing server: {result.output}"
    # Anything but a clean exit would have been a traceback on a terminal.
    assert isinstance(result.exception, SystemExit), result.exception
    return result.output


def assert_no_password(output: str) -> None:
    assert output.strip(), "the command said nothing about its failure"
    assert PASSWORD not in output
    assert IN_URL not in output


def database_cases() -> list[tuple[list[str], str]]:
    """Every command with the URL psycopg quotes back; two commands with each other failure."""
    return [
        *((command, "unparsable") for command in COMMANDS),
        *(
            (command, name)
            for name in DATABASE_URLS
            if name != "unparsable"
            for command in COMMANDS[:2]
        ),
    ]


@pytest.mark.parametrize(
    ("command", "database"), database_cases(), ids=lambda value: str(value)[:30]
)
def test_no_command_shows_the_database_password(
    servers: Servers, command: list[str], database: str
) -> None:
    assert_no_password(run_cli(command, DATABASE_URLS[database], AMQP_URLS["wrong password"]))


@pytest.mark.parametrize("broker", list(AMQP_URLS))
def test_no_broker_failure_shows_the_broker_password(servers: Servers, broker: str) -> None:
    for command in (["declare"], COMMANDS[-1]):
        database_url = "postgresql://postgres@127.0.0.1:5432/postgres"
        assert_no_password(run_cli(command, database_url, AMQP_URLS[broker]))


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_workers_never_log_a_password(servers: Servers, log_format: str) -> None:
    worker = subprocess.Popen(
        [sys.executable, "-m", "worker", "run", "all"],
        env={
            **os.environ,
            "ORDERS_DATABASE_URL": DATABASE_URLS["unparsable"],
            "ORDERS_AMQP_URL": AMQP_URLS["wrong password"],
            "ORDERS_NAMESPACE": f"secrets-{uuid4().hex[:6]}",
            "ORDERS_LOG_FORMAT": log_format,
            "ORDERS_LOG_LEVEL": "DEBUG",
            "ORDERS_RECONNECT_MAX_SECONDS": "0.2",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(3)
    worker.send_signal(signal.SIGTERM)
    output, _ = worker.communicate(timeout=30)
    assert_no_password(output)
    assert "connection info string" in output  # the driver's message was logged, masked
    assert MASK in output


def test_redaction_masks_urls_parameters_and_known_passwords() -> None:
    secrets = secrets_in(f"amqp://u:{IN_URL}@h/", r"dbname=x password='it\'s a secret'")
    assert PASSWORD in secrets
    assert IN_URL in secrets
    assert "it's a secret" in secrets
    assert redact(f"failed: {PASSWORD} at amqp://u:other@h", secrets) == (
        f"failed: {MASK} at amqp://u:{MASK}@h"
    )
    assert redact("host=h password=p4ss dbname=x") == f"host=h password={MASK} dbname=x"
