"""The CLI over the service layer against real servers: paging, order detail, tasks, teardown,
and the broker's refusals as one line."""

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID, uuid4

import pika
import pika.exceptions
import psycopg
import pytest
from click.testing import CliRunner, Result

from tests.support.commands import change_status, create_order
from worker.cli import main
from worker.config import Settings
from worker.db.apply import apply_commands
from worker.db.workflow_store import load_workflow
from worker.domain.incoming import IncomingCommand
from worker.durations import DEFAULT_RETRY_DELAYS, parse_delays
from worker.messaging.topology import Topology

Invoke = Callable[..., Result]
LONG_NUMBER = "SO-" + "7" * 61
"""An order number as long as the contract allows (64 characters)."""


@pytest.fixture
def cli_env(settings: Settings) -> dict[str, str]:
    return {
        "ORDERS_DATABASE_URL": settings.database_url,
        "ORDERS_AMQP_URL": settings.amqp_url,
        "ORDERS_NAMESPACE": settings.namespace,
        "ORDERS_RETRY_DELAYS": settings.retry_delays,
    }


@pytest.fixture
def cli(cli_env: dict[str, str]) -> Invoke:
    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(main, list(args), env={**cli_env, **(env or {})})

    return invoke


def apply(database_url: str, *commands: Any) -> None:
    with psycopg.connect(database_url) as conn:
        workflow = load_workflow(conn)
        for command in commands:
            apply_commands(conn, workflow, [IncomingCommand(command)])


def test_orders_list_pages_with_a_total_and_never_cuts_the_order_number(
    cli: Invoke, database_url: str
) -> None:
    apply(
        database_url,
        *(create_order(number) for number in (LONG_NUMBER, "SO-A", "SO-B")),
    )
    narrow = {"COLUMNS": "80"}

    first = cli("orders", "list", "--sort", "number", "--limit", "2", env=narrow)
    assert first.exit_code == 0, first.output
    assert "2 of 3 orders" in first.output
    assert LONG_NUMBER in first.output
    cursor = first.output.split("more: --after ")[1].split()[0]
    rest = cli("orders", "list", "--sort", "number", "--limit", "2", "--after", cursor, "--json")
    page = json.loads(rest.output)
    assert [o["order_number"] for o in page["items"]] == ["SO-B"]
    assert (page["total"], page["next"]) == (3, None)

    refused = cli("orders", "list", "--sort", "amount", "--after", cursor)
    assert refused.exit_code == 2
    assert "'--after'" in refused.output


def test_orders_show_lists_next_statuses_and_rejected_commands(
    cli: Invoke, database_url: str
) -> None:
    refused = change_status("SO-SHOW", "completed")
    apply(database_url, create_order("SO-SHOW"), refused)

    shown = cli("orders", "show", "SO-SHOW", env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "pending_review, in_progress, cancelled" in shown.output
    assert "commands (1 rejected)" in shown.output
    assert "invalid_transition" in shown.output
    assert str(refused.command_id) in shown.output
    data = json.loads(cli("orders", "show", "SO-SHOW", "--json").output)
    assert data["next_statuses"] == ["pending_review", "in_progress", "cancelled"]
    assert [c["outcome"] for c in data["commands"]] == ["applied", "rejected"]


def test_tasks_done_completes_a_task_once_and_open_then_filters(
    cli: Invoke, database_url: str, db: psycopg.Connection[tuple[Any, ...]]
) -> None:
    apply(database_url, create_order("SO-TASKS"))
    task_ids = [uuid4(), uuid4()]
    for task_id in task_ids:
        db.execute(
            "INSERT INTO tasks (task_id, order_number, title, assignee, due_at, rule_name,"
            " event_id, created_at) VALUES (%s, 'SO-TASKS', 'call', 'sales', %s, 'r', %s, now())",
            (task_id, datetime(2026, 12, 1, tzinfo=UTC), uuid4()),
        )

    done = cli("tasks", "done", str(task_ids[0]))
    again = cli("tasks", "done", str(task_ids[0]), "--json")
    missing = cli("tasks", "done", str(uuid4()))

    assert done.exit_code == 0, done.output
    assert "completed task" in done.output
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["already_completed"] is True
    assert missing.exit_code == 5
    still_open = json.loads(cli("tasks", "list", "--open", "--json").output)
    assert [UUID(task["task_id"]) for task in still_open] == [task_ids[1]]


def with_password(amqp_url: str, password: str) -> str:
    parts = urlsplit(amqp_url)
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port or 5672}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.mark.parametrize(
    "args",
    [
        ["declare"],
        ["demo"],
        ["publish", "change-status", "SO-1", "--to", "completed", "--actor", "a"],
        ["teardown", "--yes"],
    ],
)
def test_a_refused_broker_login_is_one_line_naming_the_setting(
    cli: Invoke, settings: Settings, args: list[str]
) -> None:
    result = cli(*args, env={"ORDERS_AMQP_URL": with_password(settings.amqp_url, "wrong")})
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1, result.output
    assert "ORDERS_AMQP_URL" in lines[0]
    assert "ACCESS_REFUSED" in lines[0]


def exists(amqp_url: str, queue: str | None = None, exchange: str | None = None) -> bool:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        if queue:
            channel.queue_declare(queue, passive=True)
        else:
            channel.exchange_declare(exchange or "", passive=True)
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        if connection.is_open:
            connection.close()
    return True


def test_teardown_removes_the_namespace_and_with_database_its_database(
    cli: Invoke, settings: Settings, topology: Topology, database_url: str
) -> None:
    default_tiers = Topology(settings.namespace, retry_delays_ms=parse_delays(DEFAULT_RETRY_DELAYS))
    declared = cli("declare", env={"ORDERS_RETRY_DELAYS": DEFAULT_RETRY_DELAYS})
    assert declared.exit_code == 0, declared.output
    queues = [q.name for t in (topology, default_tiers) for q in t.queues()]
    exchanges = [e.name for e in topology.exchanges()]
    assert all(exists(settings.amqp_url, queue=name) for name in queues)

    result = cli("teardown", "--yes", "--database", "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert sorted(report["queues"]) == sorted(set(queues))
    assert sorted(report["exchanges"]) == sorted(exchanges)
    assert report["database_dropped"] is True
    assert not any(exists(settings.amqp_url, queue=name) for name in queues)
    assert not any(exists(settings.amqp_url, exchange=name) for name in exchanges)
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(database_url).close()
    again = cli("teardown", "--yes")
    assert again.exit_code == 0, again.output
    assert "deleted 0 queues" in again.output


def test_an_unknown_status_filter_names_the_option_and_the_known_statuses(cli: Invoke) -> None:
    result = cli("orders", "list", "--status", "shipped")
    assert result.exit_code == 2
    assert "Invalid value for '--status': 'shipped' is not a status; known: pending" in (
        result.output
    )


def test_publish_and_wait_reports_the_version_and_event_it_wrote(
    cli: Invoke, topology: Topology, start_workers: Callable[..., Any]
) -> None:
    start_workers("status-worker")
    created = cli(
        *("publish", "create-order", "SO-WAITED", "--customer-id", "C", "--customer-name", "N"),
        *("--amount", "10", "--wait", "--json"),
    )
    refused = cli(
        *("publish", "change-status", "SO-WAITED", "--to", "completed", "--actor", "a"),
        *("--wait", "--json"),
    )

    assert created.exit_code == 0, created.output
    outcome = json.loads(created.output)
    assert (outcome["outcome"], outcome["version"]) == ("applied", 1)
    assert UUID(outcome["event_id"])
    assert refused.exit_code == 3, refused.output
    rejection = json.loads(refused.output)
    assert (rejection["outcome"], rejection["reason"]) == ("rejected", "invalid_transition")
    assert rejection["version"] is None
    assert UUID(rejection["event_id"]), "a rejection is announced as an event too"
