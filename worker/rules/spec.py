"""What a rule file may say, as pydantic models: triggers, actions, durations.

The models check the shape of one rule. Whether its condition compiles, its
templates name known fields and its statuses exist is checked when the file is
loaded (worker.rules.loading), so every error can name its rule.
"""

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)

from contracts.base import StatusCode
from contracts.notifications import Channel

DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
DURATION = re.compile(rf"^(?:{DURATION_PART.pattern})+$")
UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
MAX_DURATION = timedelta(weeks=520)
"""About ten years: longer durations are surely mistakes, and keep dates far from overflow."""

RuleName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100, pattern=r"^[^\s\x00](?:[^\x00]*[^\s\x00])?$"),
]
Template = Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=r"^[^\x00]*$")]


def parse_duration(value: Any) -> Any:
    """`72h`, `30m`, `1d12h`, `1.5s` as a timedelta; anything else is left to pydantic."""
    if isinstance(value, str):
        text = value.strip()
        if not DURATION.match(text):
            raise ValueError(
                f"{value!r} is not a duration; write a number and a unit (w, d, h, m, s), "
                "for example 72h, 30m or 1d12h"
            )
        seconds = sum(
            float(number) * UNIT_SECONDS[unit] for number, unit in DURATION_PART.findall(text)
        )
        if not seconds <= MAX_DURATION.total_seconds():  # also catches inf from huge numbers
            raise ValueError(_too_long(value))
        return timedelta(seconds=seconds)
    return value


def _at_most_max(value: timedelta) -> timedelta:
    if value > MAX_DURATION:
        raise ValueError(_too_long(value))
    return value


def _too_long(value: Any) -> str:
    return f"{value!r} is too long; a duration is at most {MAX_DURATION.days // 7}w (ten years)"


Duration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_at_most_max)]


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


StatusSet = Annotated[tuple[StatusCode, ...], BeforeValidator(_one_or_many), Field(min_length=1)]


class Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class OrderCreatedTrigger(Spec):
    """Fire when an order is registered."""

    event: Literal["order.created"]


class StatusChangedTrigger(Spec):
    """Fire when an order changes status, optionally only from or to certain statuses."""

    event: Literal["order.status.changed"]
    from_statuses: StatusSet | None = Field(default=None, alias="from")
    to_statuses: StatusSet | None = Field(default=None, alias="to")


class StayedInStatusTrigger(Spec):
    """Fire once per stay when an order has been in `status` for at least `duration`."""

    stayed_in: StatusCode
    duration: Duration = Field(alias="for")

    @field_validator("duration")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("the duration must be longer than zero")
        return value


def _trigger_tag(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return trigger_kind(value)  # type: ignore[arg-type]
    if not isinstance(value, dict):
        return None
    return "order.stayed" if "stayed_in" in value else value.get("event")


Trigger = Annotated[
    Annotated[OrderCreatedTrigger, Tag("order.created")]
    | Annotated[StatusChangedTrigger, Tag("order.status.changed")]
    | Annotated[StayedInStatusTrigger, Tag("order.stayed")],
    Discriminator(
        _trigger_tag,
        custom_error_type="invalid_trigger",
        custom_error_message="a trigger is `event: order.created`, `event: order.status.changed` "
        "(optionally with `from:` and `to:`), or `stayed_in: STATUS` with `for: DURATION`",
    ),
]


class SetStatusParams(Spec):
    to: StatusCode
    reason: Template | None = None


class SetStatus(Spec):
    """Publish a ChangeOrderStatus command (actor `rule:<name>`) through the commands exchange."""

    set_status: SetStatusParams

    @field_validator("set_status", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"to": value} if isinstance(value, str) else value


class NotifyParams(Spec):
    channel: Annotated[Channel, StringConstraints(max_length=100)]
    message: Template


class Notify(Spec):
    """Publish a Notification to `{ns}.notifications` with the channel as routing key."""

    notify: NotifyParams


class CreateTaskParams(Spec):
    title: Template
    assignee: Template
    due_in: Duration = Field(default=timedelta(days=1))


class CreateTask(Spec):
    """Store a follow-up task for the order and emit TaskCreated."""

    create_task: CreateTaskParams


ACTION_KEYS = ("set_status", "notify", "create_task")


def _action_tag(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return action_kind(value)  # type: ignore[arg-type]
    if not isinstance(value, dict):
        return None
    keys = [key for key in ACTION_KEYS if key in value]
    return keys[0] if len(keys) == 1 else None


Action = Annotated[
    Annotated[SetStatus, Tag("set_status")]
    | Annotated[Notify, Tag("notify")]
    | Annotated[CreateTask, Tag("create_task")],
    Discriminator(
        _action_tag,
        custom_error_type="invalid_action",
        custom_error_message="an action is one of `set_status:`, `notify:` or `create_task:`",
    ),
]


class RuleSpec(Spec):
    """One rule as written in the file."""

    name: RuleName
    description: str | None = None
    enabled: bool = True
    trigger: Trigger
    condition: Annotated[str, StringConstraints(min_length=1, max_length=4000)] | None = None
    actions: tuple[Action, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _trigger_shorthand(cls, data: Any) -> Any:
        """`trigger: order.created` is short for `trigger: {event: order.created}`."""
        if isinstance(data, dict) and isinstance(data.get("trigger"), str):
            return {**data, "trigger": {"event": data["trigger"]}}
        return data


def action_kind(
    action: SetStatus | Notify | CreateTask,
) -> Literal["set_status", "notify", "create_task"]:
    match action:
        case SetStatus():
            return "set_status"
        case Notify():
            return "notify"
        case CreateTask():
            return "create_task"


def trigger_kind(
    trigger: OrderCreatedTrigger | StatusChangedTrigger | StayedInStatusTrigger,
) -> Literal["order.created", "order.status.changed", "order.stayed"]:
    match trigger:
        case OrderCreatedTrigger():
            return "order.created"
        case StatusChangedTrigger():
            return "order.status.changed"
        case StayedInStatusTrigger():
            return "order.stayed"
