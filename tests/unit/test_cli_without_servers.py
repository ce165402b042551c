"""The CLI's own behaviour where no server is involved, or none answers."""

import click
import pytest
from click.testing import CliRunner

from worker.cli import main

NOWHERE = {
    "ORDERS_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/orders",
    "ORDERS_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/%2F",
}


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, command in group.commands.items():
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths += command_paths(command, (*prefix, name))
    return paths


@pytest.mark.parametrize("path", command_paths(main), ids=" ".join)
def test_every_command_explains_itself(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"], prog_name="order-status")
    assert result.exit_code == 0, result.output
    assert f"Usage: order-status {' '.join(path)}" in result.output


def test_the_documented_commands_exist() -> None:
    assert set(command_paths(main)) >= {
        ("migrate",),
        ("declare",),
        ("run",),
        ("publish", "create-order"),
        ("publish", "change-status"),
        ("orders", "list"),
        ("orders", "show"),
        ("commands", "show"),
        ("statuses",),
        ("demo",),
        ("rules", "check"),
        ("rules", "test"),
        ("tasks", "list"),
        ("tasks", "done"),
        ("teardown",),
    }


@pytest.mark.parametrize(
    "args",
    [["orders", "list"], ["orders", "show", "SO-1"], ["statuses"], ["migrate"]],
)
def test_an_unreachable_database_is_one_clear_line(args: list[str]) -> None:
    result = CliRunner().invoke(main, args, env=NOWHERE)
    assert result.exit_code == 1
    assert "Error: cannot use PostgreSQL" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [["declare"], ["publish", "change-status", "SO-1", "--to", "completed", "--actor", "a"]],
)
def test_an_unreachable_broker_is_one_clear_line(args: list[str]) -> None:
    result = CliRunner().invoke(main, args, env=NOWHERE)
    assert result.exit_code == 1
    assert "Error: cannot reach RabbitMQ" in result.output


def test_invalid_configuration_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["statuses"], env={"ORDERS_NAMESPACE": "Not Valid"})
    assert result.exit_code == 2
    assert "invalid configuration" in result.output
    assert "ORDERS_NAMESPACE" in result.output


def test_a_malformed_order_line_is_refused() -> None:
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
            "5",
            "--line",
            "SKU-1,two,3,Widget",
        ],
        env=NOWHERE,
    )
    assert result.exit_code == 2
    assert "SKU-1,two,3,Widget" in result.output
