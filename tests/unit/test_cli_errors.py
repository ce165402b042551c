"""Errors a person can act on: one line naming the option or ORDERS_* setting, JSON with --json."""

import json

import pytest
from click.testing import CliRunner, Result

from worker.cli import main

NOWHERE = {
    "ORDERS_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/orders",
    "ORDERS_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/%2F",
}
CREATE = ["publish", "create-order", "SO-1", "--customer-id", "C", "--customer-name", "N"]


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env={**NOWHERE, **(env or {})})


def one_line(result: Result) -> str:
    lines = result.output.splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize(
    "args", [["orders", "list"], ["orders", "show", "SO-1"], ["tasks", "list"], ["statuses"]]
)
def test_a_database_url_that_is_not_one_is_one_line_naming_the_setting(args: list[str]) -> None:
    result = invoke(*args, env={"ORDERS_DATABASE_URL": "not-a-url"})
    assert result.exit_code == 2
    assert "ORDERS_DATABASE_URL" in one_line(result)


def test_with_json_the_setting_error_is_a_json_object_on_stdout() -> None:
    result = CliRunner().invoke(
        main, ["orders", "list", "--json"], env={"ORDERS_DATABASE_URL": "not-a-url"}
    )
    assert result.exit_code == 2
    error = json.loads(result.stdout)
    assert error["setting"] == "ORDERS_DATABASE_URL"
    assert "not usable" in error["error"]
    assert result.stderr == ""


def test_an_invalid_variable_is_named_in_json_too() -> None:
    result = invoke("statuses", "--json", env={"ORDERS_BATCH_SIZE": "many"})
    assert result.exit_code == 2
    assert json.loads(result.stdout)["setting"] == "ORDERS_BATCH_SIZE"


@pytest.mark.parametrize(
    ("amount", "complaint"),
    [
        ("abc", "'abc' is not a decimal amount"),
        ("-5", "'-5' is negative"),
        ("NaN", "'NaN' is not a finite amount"),
    ],
)
def test_a_bad_amount_is_one_line_naming_the_option(amount: str, complaint: str) -> None:
    result = invoke(*CREATE, "--amount", amount)
    assert result.exit_code == 2
    line = one_line(result)
    assert "'--amount'" in line
    assert complaint in line
    assert "ConversionSyntax" not in line


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("SKU,two,3.00,x", "quantity 'two' is not a whole number"),
        ("SKU,2,3.x,x", "unit price '3.x' is not a decimal amount"),
        ("SKU,2,3.00", "expected SKU,QUANTITY,UNIT_PRICE,NAME"),
        ("SKU,0,3.00,x", "quantity: Input should be greater than 0"),
    ],
)
def test_a_bad_order_line_is_one_line_naming_the_option(line: str, complaint: str) -> None:
    result = invoke(*CREATE, "--amount", "5", "--line", line)
    assert result.exit_code == 2
    shown = one_line(result)
    assert "'--line'" in shown
    assert complaint in shown
    assert "invalid literal for int()" not in shown


def test_a_contract_violation_names_its_option_not_a_pydantic_dump() -> None:
    result = invoke(*CREATE, "--amount", "5", "--currency", "yuan")
    assert result.exit_code == 2
    shown = one_line(result)
    assert "'--currency'" in shown
    assert "validation error" not in shown


def test_with_json_a_bad_option_is_a_json_object_with_the_option() -> None:
    result = invoke(*CREATE, "--amount", "abc", "--json")
    assert result.exit_code == 2
    error = json.loads(result.stdout)
    assert error["option"] == "--amount"
    assert "'abc' is not a decimal amount" in error["error"]


def test_with_json_an_unreachable_server_is_json_with_exit_1() -> None:
    result = invoke("orders", "list", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"].startswith("cannot use PostgreSQL")


def test_a_bad_sort_or_cursor_names_the_option() -> None:
    assert "'--sort'" in one_line(invoke("orders", "list", "--sort", "colour"))
    result = invoke("tasks", "done", "not-a-uuid")
    assert result.exit_code == 2
    assert "TASK_ID" in one_line(result)


def test_teardown_refuses_without_yes() -> None:
    result = invoke("teardown", "--database")
    assert result.exit_code == 2
    assert "--yes" in one_line(result)
