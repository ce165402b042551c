"""Loading rule files: every problem is found at load time and names its rule."""

from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.workflow_spec import spec_workflow
from worker.config import REPO_EXAMPLE_RULES
from worker.rules.loading import RuleFileInvalid, check_statuses, load_rules, parse_rules
from worker.rules.spec import StayedInStatusTrigger

A = "actions: [{set_status: x}]"
N = "actions: [{notify: {channel: c, message:"


def problems_of(text: str) -> list[str]:
    with pytest.raises(RuleFileInvalid) as raised:
        parse_rules(text)
    return raised.value.problems


def test_the_example_file_ships_loads_and_names_only_workflow_statuses() -> None:
    rule_set = load_rules(REPO_EXAMPLE_RULES)
    assert [rule.name for rule in rule_set.rules] == ["large-order-review", "vip-reopened"]
    assert rule_set.disabled == ("pending-too-long",)
    check_statuses(rule_set, spec_workflow(), REPO_EXAMPLE_RULES)


def test_shorthands_and_durations() -> None:
    rule_set = parse_rules(
        """
rules:
  - name: a
    trigger: {stayed_in: pending, for: 1d12h30m}
    actions: [{set_status: cancelled}]
"""
    )
    trigger = rule_set.rules[0].spec.trigger
    assert isinstance(trigger, StayedInStatusTrigger)
    assert trigger.duration == timedelta(days=1, hours=12, minutes=30)
    assert rule_set.time_rules() == list(rule_set.rules)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            "{name: r1, trigger: order.nope, ACT}",
            "rule 'r1': trigger: a trigger is",
        ),
        ("{name: r2, trigger: order.created, actions: [{frob: 1}]}", "rule 'r2': actions.0: an"),
        (
            "{name: r3, trigger: order.created, condition: 'amount >', ACT}",
            "rule 'r3': condition 'amount >': Failed to parse",
        ),
        (
            "{name: r4, trigger: order.created, condition: 'amout > 1', ACT}",
            "rule 'r4': condition 'amout > 1': unknown name amout",
        ),
        (
            "{name: r5, trigger: order.created, condition: 'amount + 1.0', ACT}",
            "rule 'r5': condition 'amount + 1.0': the condition must give true or false",
        ),
        (
            "{name: r6, trigger: order.created, condition: 'currency > 1', ACT}",
            "rule 'r6': condition 'currency > 1': No such overload",
        ),
        (
            "{name: r7, trigger: order.created, NOTE '${order.x}'}}]}",
            "rule 'r7': action 1 message:",
        ),
        (
            "{name: r8, trigger: order.created, NOTE '${secret}'}}]}",
            "rule 'r8': action 1 message: '${secret}' uses unknown field secret",
        ),
        (
            "{name: r9, trigger: {stayed_in: pending, for: soon}, ACT}",
            "rule 'r9': trigger.order.stayed.for: Value error, 'soon' is not a duration",
        ),
        ("{trigger: order.created, ACT}", "rule #1 (no name): name:"),
        # Durations are bounded, so dates computed from them cannot overflow.
        (
            "{name: r10, trigger: {stayed_in: pending, for: 3000000d}, ACT}",
            "rule 'r10': trigger.order.stayed.for: Value error, '3000000d' is too long",
        ),
        (
            "{name: r11, trigger: {stayed_in: pending, for: 99999999999999w}, ACT}",
            "rule 'r11': trigger.order.stayed.for: Value error, '99999999999999w' is too long",
        ),
        (
            "{name: r12, trigger: order.created, "
            "actions: [{create_task: {title: t, assignee: a, due_in: 3000000d}}]}",
            "rule 'r12': actions.0.create_task.create_task.due_in: Value error, '3000000d' is too",
        ),
        # An unknown name or a type error is found even when the sample values
        # would not reach it (short-circuit), and so is a method on a value that
        # real events leave null.
        (
            "{name: r13, trigger: order.created, condition: 'amount > 10000 && nosuch == 1', ACT}",
            "rule 'r13': condition 'amount > 10000 && nosuch == 1': unknown name nosuch",
        ),
        (
            "{name: r14, trigger: order.created, "
            "condition: 'amount > 10000 && customer_type > 5', ACT}",
            "rule 'r14': condition 'amount > 10000 && customer_type > 5': No such overload",
        ),
        (
            "{name: r15, trigger: order.status.changed, condition: 'reason.startsWith(\"x\")', "
            "ACT}",
            "rule 'r15': condition 'reason.startsWith(\"x\")': Undefined variable or function",
        ),
        (
            "{name: r16, trigger: {stayed_in: pending, for: 1h}, "
            "condition: 'depth > 0 && from_status.endsWith(\"x\")', ACT}",
            "rule 'r16': condition 'depth > 0 && from_status.endsWith(\"x\")': Undefined",
        ),
    ],
)
def test_each_problem_names_its_rule(rule: str, expected: str) -> None:
    rule = rule.replace("ACT", A).replace("NOTE", N)
    problems = problems_of(f"rules:\n  - {rule}\n")
    assert any(problem.startswith(expected) for problem in problems), problems


def test_duplicate_names_and_several_bad_rules_are_all_reported() -> None:
    problems = problems_of(
        """
rules:
  - {name: same, trigger: order.created, actions: [{set_status: pending_review}]}
  - {name: same, trigger: order.created, actions: [{set_status: pending_review}]}
  - {name: broken, trigger: order.created, condition: '1 +', actions: [{set_status: x}]}
"""
    )
    assert problems[0] == "rule 'same': the name is used by an earlier rule; names are unique"
    assert problems[1].startswith("rule 'broken': condition")


@pytest.mark.parametrize("text", ["", "rules: 3", "- a\n- b", "rules: [\n"])
def test_a_file_without_a_rules_list_is_refused(text: str) -> None:
    assert problems_of(text)


def test_unknown_statuses_are_found_against_the_workflow(tmp_path: Path) -> None:
    rule_set = parse_rules(
        """
rules:
  - name: ship
    trigger: {event: order.status.changed, to: shipped}
    actions: [{set_status: delivered}]
"""
    )
    with pytest.raises(RuleFileInvalid) as raised:
        check_statuses(rule_set, spec_workflow(), tmp_path / "r.yaml")
    assert [p.split(";")[0] for p in raised.value.problems] == [
        "rule 'ship': unknown status 'delivered'",
        "rule 'ship': unknown status 'shipped'",
    ]


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuleFileInvalid, match="cannot read the file"):
        load_rules(tmp_path / "missing.yaml")


def test_the_largest_duration_loads() -> None:
    rule_set = parse_rules(
        "rules:\n  - {name: a, trigger: {stayed_in: pending, for: 520w}, "
        "actions: [{create_task: {title: t, assignee: a, due_in: 520w}}]}\n"
    )
    trigger = rule_set.rules[0].spec.trigger
    assert isinstance(trigger, StayedInStatusTrigger)
    assert trigger.duration == timedelta(weeks=520)


@pytest.mark.parametrize(
    ("trigger", "condition"),
    [
        ("order.status.changed", 'reason != null && reason.startsWith("x")'),
        ("{stayed_in: pending, for: 1h}", 'from_status != null && from_status == "pending"'),
        ("order.created", "[1000, 2000].exists(x, amount > double(x))"),
        ("order.created", "amount_e4 / (amount_e4 - 10000) > 0"),  # zero only for some data
    ],
)
def test_guarded_and_data_dependent_conditions_load(trigger: str, condition: str) -> None:
    rule_set = parse_rules(
        f"rules:\n  - {{name: a, trigger: {trigger}, condition: '{condition}', {A}}}\n"
    )
    assert rule_set.rules[0].condition is not None
