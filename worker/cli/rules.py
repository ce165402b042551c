"""`order-status rules check|test`: validate a rule file, and try it on an event safely."""

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
import psycopg
from pydantic import ValidationError

from contracts import OrderCreated, OrderStatusChanged
from worker.cli.output import ExitCode, console, table
from worker.config import Settings
from worker.db.connection import connect
from worker.db.workflow_store import SchemaMissing, load_workflow
from worker.rules.engine import Verdict, describe_action, judge
from worker.rules.facts import TriggerEvent, as_json, from_order_created, from_status_changed
from worker.rules.loading import RuleFileInvalid, RuleSet, check_statuses, load_rules

RULE_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group()
def rules() -> None:
    """Check and try automation rule files."""


@rules.command("check")
@click.argument("rule_file", type=RULE_FILE)
@click.option(
    "--offline", is_flag=True, help="Do not read the workflow from PostgreSQL to check statuses."
)
@click.pass_obj
def check(settings: Settings, *, rule_file: Path, offline: bool) -> None:
    """Validate RULE_FILE: its shape, conditions, templates and (unless --offline) its statuses.

    A check that could not run is not a pass: without the workflow the exit code is 1.
    """
    rule_set = _load_or_exit(rule_file)
    if not offline:
        try:
            with connect(settings, "cli", autocommit=True) as conn:
                workflow = load_workflow(conn)
        except (psycopg.OperationalError, SchemaMissing) as error:
            click.echo(
                f"{rule_file}: statuses not checked: cannot read the workflow ({error}); "
                "use --offline to check the file alone",
                err=True,
            )
            sys.exit(ExitCode.FAILURE)
        else:
            try:
                check_statuses(rule_set, workflow, rule_file)
            except RuleFileInvalid as error:
                _exit_invalid(error)
    click.echo(
        f"{rule_file}: {len(rule_set.rules)} rules OK"
        + (
            f" ({len(rule_set.disabled)} disabled: {', '.join(rule_set.disabled)})"
            if rule_set.disabled
            else ""
        )
    )


@rules.command("test")
@click.argument("rule_file", type=RULE_FILE)
@click.option(
    "--event",
    "event_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="An OrderCreated or OrderStatusChanged event body (JSON), as the relay publishes it.",
)
@click.option("--max-depth", type=click.IntRange(min=1), help="Default: ORDERS_RULES_MAX_DEPTH.")
@click.option("--json", "as_json_output", is_flag=True)
@click.pass_obj
def test(
    settings: Settings,
    *,
    rule_file: Path,
    event_file: Path,
    max_depth: int | None,
    as_json_output: bool,
) -> None:
    """Show which rules match EVENT, why, and which actions would run. Nothing is changed."""
    rule_set = _load_or_exit(rule_file)
    event = _read_event(event_file)
    verdicts = judge(rule_set, event, max_depth or settings.rules_max_depth, datetime.now(UTC))
    if as_json_output:
        print(json.dumps(_as_document(event, rule_set, verdicts), indent=2, ensure_ascii=False))
        return
    out = console()
    out.print(f"event {event.event_id} ({event.kind}) for order {event.order_number}")
    facts = [
        (name, json.dumps(value, ensure_ascii=False))
        for name, value in as_json(event.facts).items()
    ]
    out.print(table("values the conditions see", ("name", "value"), facts))
    for verdict in verdicts:
        out.print(f"rule {verdict.rule.name}: {_headline(verdict)}")
        out.print(f"  why: {verdict.why}")
        for planned in verdict.actions:
            out.print(f"  would {describe_action(planned)}")
    others = [rule.name for rule in rule_set.rules if rule.trigger != event.kind]
    if others:
        out.print(f"not for {event.kind}: {', '.join(others)}")
    if not any(verdict.outcome == "fired" for verdict in verdicts):
        out.print("no rule fires")


def _headline(verdict: Verdict) -> str:
    return {
        "fired": "FIRES",
        "not_matched": "does not match",
        "stopped": f"STOPPED ({verdict.reason})",
        "failed": f"FAILS ({verdict.reason})",
    }[verdict.outcome]


def _as_document(event: TriggerEvent, rule_set: RuleSet, verdicts: list[Verdict]) -> dict[str, Any]:
    return {
        "event_id": str(event.event_id),
        "trigger": event.kind,
        "order_number": event.order_number,
        "facts": as_json(event.facts),
        "rules": [
            {
                "rule": verdict.rule.name,
                "outcome": verdict.outcome,
                "reason": verdict.reason,
                "why": verdict.why,
                "actions": [describe_action(planned) for planned in verdict.actions],
            }
            for verdict in verdicts
        ],
        "not_for_this_trigger": [r.name for r in rule_set.rules if r.trigger != event.kind],
    }


def _read_event(path: Path) -> TriggerEvent:
    text = path.read_text("utf-8")
    try:
        return from_status_changed(OrderStatusChanged.model_validate_json(text))
    except ValidationError as error:
        as_changed = error
    try:
        return from_order_created(OrderCreated.model_validate_json(text))
    except ValidationError as error:
        as_created = error
    raise click.BadParameter(
        f"{path} is neither OrderStatusChanged ({_first_problem(as_changed)}) "
        f"nor OrderCreated ({_first_problem(as_created)})",
        param_hint="--event",
    )


def _first_problem(error: ValidationError) -> str:
    problem = error.errors(include_url=False, include_input=False)[0]
    return f"{'.'.join(map(str, problem['loc']))}: {problem['msg']}"


def _load_or_exit(path: Path) -> RuleSet:
    try:
        return load_rules(path)
    except RuleFileInvalid as error:
        _exit_invalid(error)


def _exit_invalid(error: RuleFileInvalid) -> NoReturn:
    click.echo(str(error), err=True)
    sys.exit(ExitCode.FAILURE)
