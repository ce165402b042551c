"""The `order-status` command line against real servers, as operators and scripts use it."""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.support.broker import message_count
from worker.cli import main
from worker.config import Settings
from worker.messaging.topology import Topology

StartWorkers = Any


@pytest.fixture
def cli_env(settings: Settings) -> dict[str, str]:
    return {
        "ORDERS_DATABASE_URL": settings.database_url,
        "ORDERS_AMQP_URL": settings.amqp_url,
        "ORDERS_NAMESPACE": settings.namespace,
    }


Invoke = Callable[..., Result]


@pytest.fixture
def cli(cli_env: dict[str, str]) -> Invoke:
    """Run `order-status ARGS...` in this process with the test's configuration."""
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, list(args), env=cli_env, catch_exceptions=False)

    return invoke


def register(cli: Invoke, number: str, *extra: str) -> Result:
    return cli(
        "publish",
        "create-order",
        number,
        "--customer-id",
        "C-77",
        "--customer-name",
        "杭州云端科技有限公司",
        "--customer-type",
        "vip",
        "--amount",
        "20000.00",
        "--date",
        "2026-11-02",
        "--line",
        "SKU-9,2,10000,Server, rack mounted",
        "--actor",
        "crm-ui",
        "--wait",
        *extra,
    )


def test_publish_waits_for_the_outcome_and_exits_by_it(
    cli: Invoke, topology: Topology, start_workers: StartWorkers
) -> None:
    start_workers()
    created = register(cli, "SO-CLI-1")
    assert created.exit_code == 0, created.output
    assert created.output.startswith("applied")

    refused = cli(
        "publish", "change-status", "SO-CLI-1", "--to", "completed", "--actor", "bob", "--wait"
    )
    assert refused.exit_code == 3
    assert "rejected (invalid_transition: pending -> completed is not allowed" in refused.output

    moved = cli(
        "publish",
        "change-status",
        "SO-CLI-1",
        "--to",
        "in_progress",
        "--actor",
        "bob",
        "--reason",
        "customer confirmed",
        "--expect-status",
        "pending",
        "--expect-version",
        "1",
        "--correlation-id",
        "ticket-42",
        "--wait",
        "--json",
    )
    assert moved.exit_code == 0, moved.output
    record = json.loads(moved.output)
    assert (record["outcome"], record["reason"], record["correlation_id"]) == (
        "applied",
        None,
        "ticket-42",
    )

    shown = cli("commands", "show", record["command_id"], "--json")
    assert json.loads(shown.output)["outcome"] == "applied"
    assert set(json.loads(shown.output)) >= {"command_id", "outcome", "reason", "detail"}


def test_orders_show_prints_the_order_lines_and_history(
    cli: Invoke, topology: Topology, start_workers: StartWorkers
) -> None:
    start_workers()
    assert register(cli, "SO-CLI-2").exit_code == 0
    moved = cli(
        "publish",
        "change-status",
        "SO-CLI-2",
        "--to",
        "cancelled",
        "--actor",
        "carol",
        "--reason",
        "duplicate order",
        "--wait",
    )
    assert moved.exit_code == 0, moved.output

    order = json.loads(cli("orders", "show", "SO-CLI-2", "--json").output)
    assert (order["status"], order["version"], order["amount"], order["currency"]) == (
        "cancelled",
        2,
        "20000.00",
        "CNY",
    )
    assert order["customer"] == {"id": "C-77", "name": "杭州云端科技有限公司", "type": "vip"}
    assert order["lines"] == [
        {"sku": "SKU-9", "name": "Server, rack mounted", "quantity": 2, "unit_price": "10000"}
    ]
    assert [
        (h["from_status"], h["to_status"], h["version"], h["actor"], h["reason"])
        for h in order["history"]
    ] == [
        (None, "pending", 1, "crm-ui", None),
        ("pending", "cancelled", 2, "carol", "duplicate order"),
    ]

    table = cli("orders", "show", "SO-CLI-2").output
    assert "cancelled 已取消" in table
    assert "duplicate order" in table
    assert "carol" in table


def test_orders_list_filters_and_prints_json(
    cli: Invoke, topology: Topology, start_workers: StartWorkers
) -> None:
    start_workers()
    assert register(cli, "SO-CLI-3").exit_code == 0
    other = register(cli, "PO-OTHER-7", "--customer-name", "Acme Trading", "--date", "2026-10-15")
    assert other.exit_code == 0, other.output
    moved = cli(
        "publish", "change-status", "PO-OTHER-7", "--to", "in_progress", "--actor", "a", "--wait"
    )
    assert moved.exit_code == 0, moved.output

    def numbers(*filters: str) -> list[str]:
        listed = cli("orders", "list", *filters, "--json")
        assert listed.exit_code == 0, listed.output
        return [order["order_number"] for order in json.loads(listed.output)["items"]]

    assert numbers("--status", "pending") == ["SO-CLI-3"]
    assert numbers("--status", "in_progress") == ["PO-OTHER-7"]
    assert numbers("--status", "completed") == []
    assert numbers("--customer", "云端") == ["SO-CLI-3"]
    assert numbers("--customer", "acme") == ["PO-OTHER-7"]
    assert numbers("--since", "2026-11-01") == ["SO-CLI-3"]
    assert numbers("--until", "2026-11-01") == ["PO-OTHER-7"]
    assert numbers("--number", "cli") == ["SO-CLI-3"]
    assert sorted(numbers()) == ["PO-OTHER-7", "SO-CLI-3"]
    table = cli("orders", "list", "--number", "cli").output
    assert "SO-CLI-3" in table
    assert "PO-OTHER-7" not in table


def test_missing_things_exit_with_not_found(cli: Invoke, topology: Topology) -> None:
    assert cli("orders", "show", "SO-NOPE").exit_code == 5
    assert cli("commands", "show", "6f1c8e4e-9b7e-4a47-8a55-1e1a8a1d6f00").exit_code == 5


def test_statuses_shows_the_workflow(cli: Invoke, topology: Topology) -> None:
    workflow = json.loads(cli("statuses", "--json").output)
    assert workflow["initial"] == "pending"
    review = next(s for s in workflow["statuses"] if s["code"] == "pending_review")
    assert review == {
        "code": "pending_review",
        "label_en": "Pending review",
        "label_zh": "待审核",
        "next": ["pending", "in_progress", "cancelled"],
    }
    assert "进行中" in cli("statuses").output


def test_publishing_before_the_topology_exists_says_what_to_do(
    cli_env: dict[str, str],
) -> None:
    result = CliRunner().invoke(
        main,
        ["publish", "change-status", "SO-1", "--to", "completed", "--actor", "a"],
        env=cli_env,
    )
    assert result.exit_code == 1
    assert "order-status declare" in result.output


def test_a_bad_command_line_is_refused_before_publishing() -> None:
    result = CliRunner().invoke(
        main,
        [
            "publish",
            "create-order",
            "SO-1",
            "--customer-id",
            "C",
            "--customer-name",
            "N",
            "--amount",
            "-5",
        ],
    )
    assert result.exit_code == 2
    assert "Invalid value for '--amount': '-5' is negative" in result.output


def test_the_run_command_serves_until_sigterm(
    cli: Invoke, cli_env: dict[str, str], topology: Topology
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "run", "all"],
        env={**os.environ, **cli_env, "ORDERS_LOG_FORMAT": "json"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        created = register(cli, "SO-CLI-RUN")
        assert created.exit_code == 0, created.output
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "received SIGTERM; stopping" in stderr
    logged = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(entry["message"] == "status worker stopped" for entry in logged)


def _run_until_it_gives_up(env: dict[str, str], worker: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", "run", worker],
        env={**os.environ, **env, "ORDERS_GIVE_UP_AFTER_SECONDS": "2"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_run_says_once_that_the_database_is_unmigrated_then_gives_up(
    cli_env: dict[str, str], servers: Any, topology: Topology
) -> None:
    completed = _run_until_it_gives_up(
        {**cli_env, "ORDERS_DATABASE_URL": servers.postgres_url}, "status-worker"
    )
    assert completed.returncode == 1
    said = [line for line in completed.stderr.splitlines() if "cannot work" in line]
    assert len(said) == 1, completed.stderr
    assert "run `order-status migrate` first" in said[0]
    assert "ORDERS_DATABASE_URL" in said[0]
    assert "gave up" in completed.stderr


def test_run_says_once_that_the_broker_refused_the_login_then_gives_up(
    cli_env: dict[str, str], topology: Topology
) -> None:
    refused = {**cli_env, "ORDERS_AMQP_URL": "amqp://guest:wrong@127.0.0.1:5672/%2F"}
    completed = _run_until_it_gives_up(refused, "dead-letter-ingester")
    assert completed.returncode == 1
    said = [line for line in completed.stderr.splitlines() if "cannot work" in line]
    assert len(said) == 1, completed.stderr
    assert "ACCESS_REFUSED" in said[0]
    assert "ORDERS_AMQP_URL" in said[0]
    assert "wrong" not in completed.stderr, "the password must not be logged"
    assert "<locals>" not in completed.stderr, "log lines speak of the product, not its code"
    assert "Retrying" not in completed.stderr
    assert "Traceback" not in completed.stderr.split("gave up")[0]


def test_demo_plays_its_scenario(cli: Invoke, topology: Topology) -> None:
    result = cli("demo")
    assert result.exit_code == 0, result.output
    assert "invalid_transition" in result.output
    assert "version_conflict" in result.output
    assert "duplicate: nothing changed" in result.output
    assert "completed -> in_progress" in result.output


def test_publishing_a_command_id_again_reports_the_duplicate(
    cli: Invoke, topology: Topology, start_workers: StartWorkers
) -> None:
    start_workers()
    assert register(cli, "SO-CLI-4").exit_code == 0
    change = ("publish", "change-status", "SO-CLI-4", "--to", "in_progress", "--actor", "bob")
    command_id = "0c3f2a8e-5d4b-4c1e-9a7f-2b6d8e9f1a3c"
    first = cli(*change, "--command-id", command_id, "--wait")
    again = cli(*change, "--command-id", command_id, "--wait", "--json")
    other = cli(*change[:4], "cancelled", *change[5:], "--command-id", command_id, "--wait")

    assert first.exit_code == 0, first.output
    assert again.exit_code == 0, again.output
    repeated = json.loads(again.output)
    assert (repeated["outcome"], repeated["recorded_outcome"], repeated["deliveries"]) == (
        "duplicate",
        "applied",
        2,
    )
    assert other.exit_code == 1
    assert "already used for a command with other content" in other.output
    unwaited = cli(*change[:4], "cancelled", *change[5:], "--command-id", command_id)
    assert unwaited.exit_code == 1, "refused without --wait too"


def test_publish_and_wait_sends_nothing_when_the_database_is_out_of_reach(
    cli_env: dict[str, str], settings: Settings, topology: Topology
) -> None:
    unreachable = {**cli_env, "ORDERS_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/orders"}
    result = CliRunner().invoke(
        main,
        ["publish", "change-status", "SO-1", "--to", "completed", "--actor", "a", "--wait"],
        env=unreachable,
    )
    assert result.exit_code == 1, result.output
    assert "PostgreSQL" in result.output
    assert message_count(settings.amqp_url, topology.status_worker_queue) == 0


def test_declare_explains_a_queue_declared_with_other_arguments(
    cli_env: dict[str, str], topology: Topology
) -> None:
    result = CliRunner().invoke(main, ["declare"], env={**cli_env, "ORDERS_DELIVERY_LIMIT": "3"})
    assert result.exit_code == 1
    assert f"{topology.status_worker_queue} already exists with other arguments" in result.output
    assert "x-delivery-limit" in result.output
