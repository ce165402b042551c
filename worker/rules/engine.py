"""Decide what the rules make of one trigger event, and plan their actions. No I/O.

The rules worker records and carries out these verdicts; `order-status rules
test` prints them without doing anything. Every id an action produces is
derived from (rule, event, action position), so planning the same event again
yields the same command, notification and task ids, and a replay cannot
duplicate them.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID, uuid5

from pydantic import ValidationError

from contracts import ChangeOrderStatus, Notification, TaskCreated
from worker.domain.decisions import RULE_ACTOR_PREFIX
from worker.rules.conditions import ConditionFailed
from worker.rules.facts import TriggerEvent
from worker.rules.loading import CompiledRule, RuleSet
from worker.rules.spec import CreateTask, Notify, SetStatus, StatusChangedTrigger, action_kind

RULE_IDS = UUID("6f1d9c2e-8a47-5b3e-9f0c-3d2a1b4c5e6f")
"""The uuid5 namespace of every id a rule's action produces."""

MAX_TEXT = 200
MAX_LONG_TEXT = 1000

Outcome = Literal["fired", "stopped", "failed", "not_matched"]


def action_id(rule: str, event_id: UUID, position: int, part: str = "") -> UUID:
    """The id of what action `position` of `rule` produces for `event_id`."""
    return uuid5(RULE_IDS, f"{rule}\n{event_id}\n{position}\n{part}")


def stay_id(order_number: str, version: int) -> UUID:
    """The id of an order's stay in the status it entered at `version`, for time-based rules.

    Every scan that finds the same stay gets the same id, so each rule fires once per stay.
    """
    return uuid5(RULE_IDS, f"stay\n{order_number}\n{version}")


def rule_actor(rule: str) -> str:
    return f"{RULE_ACTOR_PREFIX}{rule}"


@dataclass(frozen=True)
class PlannedStatusChange:
    position: int
    command: ChangeOrderStatus


@dataclass(frozen=True)
class PlannedNotification:
    position: int
    notification: Notification


@dataclass(frozen=True)
class PlannedTask:
    position: int
    task: TaskCreated


@dataclass(frozen=True)
class UnplannableAction:
    """An action that cannot be built from these facts (a template rendered empty, say)."""

    position: int
    kind: str
    message_id: UUID
    detail: str


PlannedAction = PlannedStatusChange | PlannedNotification | PlannedTask | UnplannableAction


@dataclass(frozen=True)
class Verdict:
    """What one rule made of one trigger event, and why."""

    rule: CompiledRule
    outcome: Outcome
    why: str
    reason: str | None = None
    actions: tuple[PlannedAction, ...] = ()


def judge(rule_set: RuleSet, event: TriggerEvent, max_depth: int, now: datetime) -> list[Verdict]:
    """The verdict of every rule with this event's trigger, in file order."""
    return [judge_rule(rule, event, max_depth, now) for rule in rule_set.for_trigger(event.kind)]


def judge_rule(rule: CompiledRule, event: TriggerEvent, max_depth: int, now: datetime) -> Verdict:
    """Whether `rule` fires for `event`: trigger narrowing, condition, then the loop guard."""
    narrowing = _narrowing_mismatch(rule, event)
    if narrowing:
        return Verdict(rule, "not_matched", narrowing)
    if rule.condition is None:
        why = "no condition"
    else:
        try:
            holds = rule.condition.evaluate(event.facts)
        except ConditionFailed as error:
            return Verdict(rule, "failed", f"condition failed: {error}", "condition_error")
        if not holds:
            return Verdict(rule, "not_matched", f"condition is false: {rule.condition.source}")
        why = f"condition is true: {rule.condition.source}"
    if event.depth >= max_depth:
        return Verdict(
            rule,
            "stopped",
            f"{why}; but the event is {event.depth} rule-caused steps deep and rules stop at "
            f"{max_depth} (ORDERS_RULES_MAX_DEPTH)",
            "depth_limit",
        )
    return Verdict(rule, "fired", why, actions=plan_actions(rule, event, now))


def _narrowing_mismatch(rule: CompiledRule, event: TriggerEvent) -> str | None:
    trigger = rule.spec.trigger
    if not isinstance(trigger, StatusChangedTrigger):
        return None
    from_status, to_status = event.facts["from_status"], event.facts["to_status"]
    if trigger.from_statuses and from_status not in trigger.from_statuses:
        return (
            f"from {from_status}, but the trigger wants from {' or '.join(trigger.from_statuses)}"
        )
    if trigger.to_statuses and to_status not in trigger.to_statuses:
        return f"to {to_status}, but the trigger wants to {' or '.join(trigger.to_statuses)}"
    return None


def plan_actions(
    rule: CompiledRule, event: TriggerEvent, now: datetime
) -> tuple[PlannedAction, ...]:
    """Build the command, notification or task of each action, with derived ids."""
    values = event.template_values()
    planned: list[PlannedAction] = []
    for position, action in enumerate(rule.spec.actions, start=1):
        message_id = action_id(rule.name, event.event_id, position)
        try:
            planned.append(
                _plan(
                    rule,
                    action,
                    position,
                    message_id=message_id,
                    event=event,
                    values=values,
                    now=now,
                )
            )
        except ValidationError as error:
            problems = error.errors(include_url=False, include_input=False)
            detail = "; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in problems)
            planned.append(UnplannableAction(position, action_kind(action), message_id, detail))
        except OverflowError as error:  # a due date past the year 9999
            detail = f"{type(error).__name__}: {error}"
            planned.append(UnplannableAction(position, action_kind(action), message_id, detail))
    return tuple(planned)


def _plan(
    rule: CompiledRule,
    action: SetStatus | Notify | CreateTask,
    position: int,
    *,
    message_id: UUID,
    event: TriggerEvent,
    values: dict[str, str],
    now: datetime,
) -> PlannedAction:
    def render(field: str) -> str:
        return rule.template(position, field).render(values)

    match action:
        case SetStatus():
            reason = render("reason") if action.set_status.reason else f"rule {rule.name}"
            return PlannedStatusChange(
                position,
                ChangeOrderStatus(
                    command_id=message_id,
                    order_number=event.order_number,
                    to_status=action.set_status.to,
                    # Only if the order is still as the rule saw it.
                    expected_version=event.order_version,
                    actor=rule_actor(rule.name),
                    reason=reason[:MAX_LONG_TEXT],
                    rule_depth=event.depth + 1,
                ),
            )
        case Notify():
            return PlannedNotification(
                position,
                Notification(
                    notification_id=message_id,
                    channel=action.notify.channel,
                    order_number=event.order_number,
                    message=render("message")[:MAX_LONG_TEXT],
                    rule=rule.name,
                    causation_id=event.event_id,
                    correlation_id=event.correlation_id,
                    created_at=now,
                ),
            )
        case CreateTask():
            return PlannedTask(
                position,
                TaskCreated(
                    event_id=action_id(rule.name, event.event_id, position, "TaskCreated"),
                    task_id=message_id,
                    order_number=event.order_number,
                    title=render("title").strip()[:MAX_TEXT],
                    assignee=render("assignee").strip()[:MAX_TEXT],
                    due_at=now + action.create_task.due_in,
                    rule=rule.name,
                    causation_id=event.event_id,
                    correlation_id=event.correlation_id,
                    created_at=now,
                ),
            )


def describe_action(planned: PlannedAction) -> str:
    """One line saying what an action would do, for people."""
    match planned:
        case PlannedStatusChange(command=command):
            return (
                f"set_status {command.to_status} (ChangeOrderStatus {command.command_id}, "
                f"actor {command.actor}, expected version {command.expected_version})"
            )
        case PlannedNotification(notification=note):
            return f"notify {note.channel}: {note.message}"
        case PlannedTask(task=task):
            return (
                f"create_task {task.title!r} for {task.assignee}, "
                f"due {task.due_at.isoformat(timespec='minutes')}"
            )
        case UnplannableAction():
            return f"{planned.kind} cannot be built: {planned.detail}"
