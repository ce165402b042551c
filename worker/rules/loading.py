"""Load a rule file: parse the YAML, validate each rule, compile conditions and templates.

Everything is checked before anything runs, and every problem is reported with
the name of its rule. A file with any problem is refused as a whole: a worker
never runs half a rule set.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import product
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from worker.domain.workflow import Workflow
from worker.rules.conditions import Condition, ConditionInvalid, compile_condition
from worker.rules.facts import NULLABLE_FACTS
from worker.rules.spec import (
    CreateTask,
    Notify,
    RuleSpec,
    SetStatus,
    StatusChangedTrigger,
    StayedInStatusTrigger,
    trigger_kind,
)
from worker.rules.templates import MessageTemplate, TemplateInvalid, compile_template

MAX_ERRORS_PER_RULE = 5


class RuleFileInvalid(Exception):
    """The rule file cannot be used; `problems` name the rule of each."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"invalid rule file {path}:\n" + "\n".join(f"  {p}" for p in problems))


@dataclass(frozen=True)
class CompiledRule:
    """A rule ready to run: its spec, its compiled condition and templates."""

    spec: RuleSpec
    condition: Condition | None
    templates: dict[str, MessageTemplate]
    """Compiled templates by `<action position>.<field>`, e.g. `2.message`."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def trigger(self) -> str:
        return trigger_kind(self.spec.trigger)

    def template(self, position: int, field: str) -> MessageTemplate:
        return self.templates[f"{position}.{field}"]


@dataclass(frozen=True)
class RuleSet:
    """All the enabled rules of a file, in file order, plus the names of disabled ones."""

    rules: tuple[CompiledRule, ...]
    disabled: tuple[str, ...] = ()

    def for_trigger(self, kind: str) -> list[CompiledRule]:
        return [rule for rule in self.rules if rule.trigger == kind]

    def time_rules(self) -> list[CompiledRule]:
        return self.for_trigger("order.stayed")

    def statuses_named(self) -> dict[str, set[str]]:
        """Each rule's name with the status codes it mentions (triggers and set_status)."""
        named: dict[str, set[str]] = {}
        for rule in self.rules:
            codes: set[str] = set()
            trigger = rule.spec.trigger
            if isinstance(trigger, StatusChangedTrigger):
                codes |= set(trigger.from_statuses or ()) | set(trigger.to_statuses or ())
            if isinstance(trigger, StayedInStatusTrigger):
                codes.add(trigger.stayed_in)
            codes |= {a.set_status.to for a in rule.spec.actions if isinstance(a, SetStatus)}
            named[rule.name] = codes
        return named


def load_rules(path: Path) -> RuleSet:
    """Read and compile the rule file at `path`; raise RuleFileInvalid naming every problem."""
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RuleFileInvalid(path, [f"cannot read the file: {error}"]) from error
    return parse_rules(text, path)


def parse_rules(text: str, source: Path | str = "<rules>") -> RuleSet:
    """Compile the rules in `text` (YAML with a top-level `rules:` list)."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RuleFileInvalid(source, [f"not valid YAML: {error}"]) from error
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        raise RuleFileInvalid(source, ["the file must hold a top-level `rules:` list"])
    unexpected = sorted(str(key) for key in document if key != "rules")
    problems = [f"unknown top-level key {key!r}; only `rules:` is read" for key in unexpected]
    compiled: list[CompiledRule] = []
    disabled: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(document["rules"], start=1):
        label = _label(raw, index)
        try:
            rule = _compile(raw)
        except _RuleProblems as error:
            problems += [f"rule {label}: {problem}" for problem in error.problems]
            continue
        if rule.name in seen:
            problems.append(f"rule {label}: the name is used by an earlier rule; names are unique")
            continue
        seen.add(rule.name)
        if rule.spec.enabled:
            compiled.append(rule)
        else:
            disabled.append(rule.name)
    if problems:
        raise RuleFileInvalid(source, problems)
    return RuleSet(tuple(compiled), tuple(disabled))


def check_statuses(rule_set: RuleSet, workflow: Workflow, source: Path | str) -> None:
    """Refuse rules that name a status the workflow does not have."""
    known = ", ".join(status.code for status in workflow.statuses)
    problems = [
        f"rule {name!r}: unknown status {code!r}; the workflow has {known}"
        for name, codes in rule_set.statuses_named().items()
        for code in sorted(codes)
        if not workflow.knows(code)
    ]
    if problems:
        raise RuleFileInvalid(source, problems)


class _RuleProblems(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _label(raw: Any, index: int) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    return repr(name) if isinstance(name, str) and name else f"#{index} (no name)"


def _compile(raw: Any) -> CompiledRule:
    try:
        spec = RuleSpec.model_validate(raw)
    except ValidationError as error:
        raise _RuleProblems(_describe(error)) from error
    problems: list[str] = []
    condition = None
    if spec.condition is not None:
        try:
            condition = compile_condition(
                spec.condition, sample_fact_sets(trigger_kind(spec.trigger))
            )
        except ConditionInvalid as error:
            problems.append(f"condition {spec.condition!r}: {error}")
    templates: dict[str, MessageTemplate] = {}
    for position, action in enumerate(spec.actions, start=1):
        for field, source in _template_sources(action).items():
            try:
                templates[f"{position}.{field}"] = compile_template(source)
            except TemplateInvalid as error:
                problems.append(f"action {position} {field}: {error}")
    if problems:
        raise _RuleProblems(problems)
    return CompiledRule(spec, condition, templates)


def _template_sources(action: SetStatus | Notify | CreateTask) -> dict[str, str]:
    match action:
        case SetStatus():
            reason = action.set_status.reason
            return {} if reason is None else {"reason": reason}
        case Notify():
            return {"message": action.notify.message}
        case CreateTask():
            return {"title": action.create_task.title, "assignee": action.create_task.assignee}


def _describe(error: ValidationError) -> list[str]:
    problems = error.errors(include_url=False, include_input=False)
    described = [
        f"{'.'.join(str(part) for part in problem['loc']) or '(rule)'}: {problem['msg']}"
        for problem in problems[:MAX_ERRORS_PER_RULE]
    ]
    if len(problems) > MAX_ERRORS_PER_RULE:
        described.append(f"and {len(problems) - MAX_ERRORS_PER_RULE} more")
    return described


def sample_fact_sets(kind: str) -> list[dict[str, Any]]:
    """Facts like real events of a trigger, to try a condition on when it is compiled.

    Small and large amounts and depths, each with every nullable fact as real
    events of this trigger may have it: null, or set.
    """
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    base = {
        "trigger": kind,
        "order_number": "SO-1",
        "status": "pending",
        "to_status": "pending",
        "actor": "someone",
        "currency": "CNY",
        "customer_id": "C-1",
        "customer_type": "standard",
        "order_date": moment,
        "event_time": moment,
    }
    sizes = [
        {"amount": 1.0, "amount_e4": 10_000, "depth": 0, "version": 1},
        {"amount": 1e12, "amount_e4": 10**16, "depth": 3, "version": 7},
    ]
    by_trigger: dict[str, dict[str, list[Any]]] = {
        "order.created": {"from_status": [None], "reason": [None], "stayed_hours": [None]},
        "order.status.changed": {
            "from_status": ["pending"],
            "reason": [None, "a reason"],
            "stayed_hours": [None],
        },
        "order.stayed": {
            "from_status": [None, "pending"],
            "reason": [None, "a reason"],
            "stayed_hours": [1.0, 1000.0],
        },
    }
    nullable = by_trigger.get(kind, {name: [None] for name in NULLABLE_FACTS})
    names = list(nullable)
    return [
        {**base, **size, **dict(zip(names, values, strict=True))}
        for size in sizes
        for values in product(*(nullable[name] for name in names))
    ]
