"""`order-status rules check|test` and `run rules` with a bad file: no server involved."""

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from uuid import UUID

from click.testing import CliRunner
from rich.console import Console

from contracts import Customer, OrderCreated, OrderSnapshot, OrderStatusChanged
from worker.cli import main
from worker.cli.output import console, table
from worker.config import REPO_EXAMPLE_RULES

NOWHERE = {
    "ORDERS_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/orders",
    "ORDERS_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/%2F",
}
INVALID = """
rules:
  - name: fine
    trigger: order.created
    actions: [{set_status: pending_review}]
  - name: typo-in-condition
    trigger: order.created
    condition: amount >> 10
    actions: [{set_status: pending_review}]
"""
EVENT_ID = UUID("3b1f0c9e-2d7a-4e55-8c1b-6a9d0e2f4b7c")


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=NOWHERE)
    return result.exit_code, result.stdout, result.stderr


def event_file(tmp_path: Path, amount: str) -> Path:
    event = OrderCreated(
        event_id=EVENT_ID,
        command_id=EVENT_ID,
        order_number="SO-2026-0003",
        status="pending",
        version=1,
        customer=Customer(id="C-1001", name="上海示例贸易有限公司", type="enterprise"),
        amount=Decimal(amount),
        currency="CNY",
        order_date=date(2026, 11, 26),
        actor="erp-sync",
        created_at=datetime(2026, 11, 26, 9, 0, tzinfo=UTC),
    )
    path = tmp_path / "event.json"
    path.write_text(event.model_dump_json(), "utf-8")
    return path


def test_check_fails_when_the_statuses_cannot_be_checked_unless_offline() -> None:
    code, out, err = invoke("rules", "check", str(REPO_EXAMPLE_RULES))
    assert code == 1
    assert out == ""
    assert "statuses not checked: cannot read the workflow" in err
    assert "use --offline" in err

    code, out, err = invoke("rules", "check", str(REPO_EXAMPLE_RULES), "--offline")
    assert code == 0, err
    assert out == f"{REPO_EXAMPLE_RULES}: 2 rules OK (1 disabled: pending-too-long)\n"
    assert err == ""


def test_check_fails_an_invalid_file_naming_the_rule(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(INVALID, "utf-8")
    code, out, err = invoke("rules", "check", str(path), "--offline")
    assert code == 1
    assert out == ""
    assert f"invalid rule file {path}:" in err
    assert "rule 'typo-in-condition': condition 'amount >> 10': Failed to parse" in err
    assert "'fine'" not in err


def test_run_refuses_to_start_with_an_invalid_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(INVALID, "utf-8")
    completed = subprocess.run(
        [sys.executable, "-m", "worker", "run", "rules"],
        env={**os.environ, **NOWHERE, "ORDERS_RULES_FILE": str(path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 1
    assert "Error: invalid rule file" in completed.stderr
    assert "rule 'typo-in-condition'" in completed.stderr


def test_rules_test_shows_what_matches_why_and_what_would_run(tmp_path: Path) -> None:
    code, out, err = invoke(
        "rules", "test", str(REPO_EXAMPLE_RULES), "--event", str(event_file(tmp_path, "20000.00"))
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"event {EVENT_ID} (order.created) for order SO-2026-0003"
    assert "rule large-order-review: FIRES" in lines
    assert "  why: condition is true: amount > 10000" in lines
    would = [line for line in lines if line.startswith("  would ")]
    assert would[0].startswith("  would set_status pending_review (ChangeOrderStatus ")
    assert would[0].endswith("actor rule:large-order-review, expected version 1)")
    assert would[1] == (
        "  would notify sales.managers: 大额订单 SO-2026-0003: 20000.00 CNY, 客户类型 enterprise"
    )
    assert would[2].startswith("  would create_task '审核大额订单' for sales-manager, due ")
    assert "not for order.created: vip-reopened" in lines


def test_rules_test_as_json_for_an_order_that_fires_nothing(tmp_path: Path) -> None:
    code, out, err = invoke(
        "rules",
        "test",
        str(REPO_EXAMPLE_RULES),
        "--event",
        str(event_file(tmp_path, "500")),
        "--json",
    )
    assert code == 0, err
    document = json.loads(out)
    assert document["facts"]["amount"] == 500.0
    assert document["facts"]["amount_e4"] == 5_000_000
    assert document["rules"] == [
        {
            "rule": "large-order-review",
            "outcome": "not_matched",
            "reason": None,
            "why": "condition is false: amount > 10000",
            "actions": [],
        }
    ]


def test_rules_test_refuses_what_is_not_an_event(tmp_path: Path) -> None:
    path = tmp_path / "event.json"
    path.write_text('{"order_number": "SO-1"}', "utf-8")
    code, _, err = invoke("rules", "test", str(REPO_EXAMPLE_RULES), "--event", str(path))
    assert code == 2
    assert "is neither OrderStatusChanged" in err


def test_rules_test_takes_a_status_change_event(tmp_path: Path) -> None:
    event = OrderStatusChanged(
        event_id=EVENT_ID,
        command_id=EVENT_ID,
        order_number="SO-2026-0003",
        from_status="completed",
        to_status="in_progress",
        version=5,
        actor="dave@support",
        reason="defect reported",
        changed_at=datetime(2026, 11, 26, 9, 0, tzinfo=UTC),
        order=OrderSnapshot(
            amount=Decimal("20000.00"),
            currency="CNY",
            customer_id="C-1001",
            customer_type="vip",
            order_date=date(2026, 11, 26),
        ),
    )
    path = tmp_path / "changed.json"
    path.write_text(event.model_dump_json(), "utf-8")
    code, out, err = invoke("rules", "test", str(REPO_EXAMPLE_RULES), "--event", str(path))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"event {EVENT_ID} (order.status.changed) for order SO-2026-0003"
    assert "rule vip-reopened: FIRES" in lines
    assert (
        "  would notify sales.account-managers: VIP 订单 SO-2026-0003 已重新打开 "
        "(dave@support: defect reported)" in lines
    )
    assert "not for order.status.changed: large-order-review" in lines


def test_brackets_in_rule_names_and_values_are_shown_as_written(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        """
rules:
  - name: "[urgent] big [/]"
    trigger: order.created
    actions: [{notify: {channel: ops, message: "[bold]${customer_id}[/bold] [/]"}}]
""",
        "utf-8",
    )
    code, out, err = invoke("rules", "test", str(rules), "--event", str(event_file(tmp_path, "5")))
    assert code == 0, err
    assert "rule [urgent] big [/]: FIRES" in out.splitlines()
    assert "  would notify ops: [bold]C-1001[/bold] [/]" in out.splitlines()


def test_table_titles_and_cells_are_plain_text_on_any_console() -> None:
    # orders show, tasks list and others print user text (titles, reasons) in tables.
    for out in (console(), Console(width=100, markup=True)):
        with out.capture() as captured:
            out.print(table("tasks [x]", ("title",), [("[urgent] call back [/]",), (None,)]))
        shown = captured.get()
        assert "tasks [x]" in shown
        assert "[urgent] call back [/]" in shown
