"""The benchmark's commands, planned ahead so the run can be checked afterwards.

Orders are registered first. Status changes then go round the orders one
after another, each moving its order along the workflow; some are invalid on
purpose (a transition the workflow refuses) and some are sent twice (the same
command id and body), so a run also exercises rejection and deduplication.
Every planned command knows what must become of it.
"""

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from uuid import UUID, uuid4

from contracts import COMMANDS_BY_TYPE
from worker.domain.workflow import Workflow

ROUTE = {kind.type_name: kind.routing_key for kind in COMMANDS_BY_TYPE.values()}
DUPLICATE_SPREAD = 50
"""A repeat is sent up to this many messages after its original."""


class Expect(StrEnum):
    APPLIED = "applied"
    REJECTED = "rejected"


@dataclass(frozen=True)
class PlannedMessage:
    """One message to publish: a command, or a repeat of one sent earlier."""

    command_id: str
    type_name: str
    routing_key: str
    body: bytes


@dataclass
class Workload:
    """Registrations, then status changes, with what each command must come to."""

    registrations: list[PlannedMessage] = field(default_factory=list)
    changes: list[PlannedMessage] = field(default_factory=list)
    expected: dict[str, Expect] = field(default_factory=dict)
    repeated: set[str] = field(default_factory=set)
    final_status: dict[str, str] = field(default_factory=dict)
    """Where each order must end, and (below) at which version."""
    final_version: dict[str, int] = field(default_factory=dict)

    @property
    def distinct_changes(self) -> int:
        return len(self.changes) - len(self.repeated_messages())

    def repeated_messages(self) -> list[PlannedMessage]:
        seen: set[str] = set()
        repeats = []
        for message in self.changes:
            if message.command_id in seen:
                repeats.append(message)
            seen.add(message.command_id)
        return repeats


def plan_workload(
    workflow: Workflow,
    *,
    orders: int,
    commands: int,
    duplicates: float,
    invalid: float,
    prefix: str,
    seed: int = 7,
) -> Workload:
    """Plan `orders` registrations and `commands` distinct status changes."""
    rng = random.Random(seed)
    workload = Workload()
    numbers = [f"{prefix}-{i:06d}" for i in range(orders)]
    for number in numbers:
        command_id = uuid4()
        body = {
            "command_id": str(command_id),
            "order_number": number,
            "customer": {"id": f"C-{rng.randrange(1000):03d}", "name": "Bench", "type": "vip"},
            "amount": f"{rng.randrange(100, 50_000)}.00",
            "currency": "CNY",
            "order_date": date(2026, 11, 27).isoformat(),
            "actor": "bench",
        }
        workload.registrations.append(_message(command_id, "CreateOrder", body))
    codes = {status.code for status in workflow.statuses}
    status = dict.fromkeys(numbers, workflow.initial)
    changes: list[PlannedMessage] = []
    for i in range(commands):
        number = numbers[i % orders]
        current = status[number]
        command_id = uuid4()
        refused = sorted(codes - set(workflow.next_statuses(current)) - {current})
        if refused and rng.random() < invalid:
            to_status = rng.choice(refused)
            workload.expected[str(command_id)] = Expect.REJECTED
        else:
            to_status = _next_along(workflow, current, rng)
            status[number] = to_status
            workload.expected[str(command_id)] = Expect.APPLIED
        body = {
            "command_id": str(command_id),
            "order_number": number,
            "to_status": to_status,
            "actor": "bench",
            "reason": "benchmark",
        }
        changes.append(_message(command_id, "ChangeOrderStatus", body))
    workload.final_status = status
    workload.final_version = dict.fromkeys(numbers, 1)
    for message in changes:
        if workload.expected[message.command_id] is Expect.APPLIED:
            workload.final_version[json.loads(message.body)["order_number"]] += 1
    workload.changes = _with_repeats(changes, duplicates, rng)
    workload.repeated = {message.command_id for message in workload.repeated_messages()}
    return workload


def _next_along(workflow: Workflow, current: str, rng: random.Random) -> str:
    """A transition the workflow allows, preferring those that keep the order moving."""
    options = [code for code in workflow.next_statuses(current) if code != "cancelled"]
    return rng.choice(options or list(workflow.next_statuses(current)))


def _with_repeats(
    changes: list[PlannedMessage], fraction: float, rng: random.Random
) -> list[PlannedMessage]:
    """Insert exact repeats of about `fraction` of the changes, a little after each original."""
    count = round(len(changes) * fraction)
    if not count:
        return changes
    repeat_after: dict[int, list[PlannedMessage]] = {}
    for original in rng.sample(range(len(changes)), count):
        slot = min(len(changes) - 1, original + rng.randint(1, DUPLICATE_SPREAD))
        repeat_after.setdefault(slot, []).append(changes[original])
    stream = []
    for position, message in enumerate(changes):
        stream.append(message)
        stream.extend(repeat_after.get(position, []))
    return stream


def _message(command_id: UUID, type_name: str, body: Mapping[str, object]) -> PlannedMessage:
    return PlannedMessage(str(command_id), type_name, ROUTE[type_name], json.dumps(body).encode())
