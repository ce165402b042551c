"""In-memory stores behind the same interfaces as the PostgreSQL and RabbitMQ adapters.

The service layer's use cases run against these in unit tests, so every path
(refusals, timeouts, repeats, paging) is checked in milliseconds; the SQL of
the real adapters is checked against PostgreSQL in tests/integration/.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from contracts import Command, CommandOutcome
from tests.support.workflow_spec import spec_workflow
from worker.domain.fingerprints import fingerprint
from worker.domain.workflow import Workflow
from worker.errors import Unavailable
from worker.services.commands import CommandEffects
from worker.services.orders import OrderFilter, OrderListQuery, Position, sort_value
from worker.services.tasks import TaskQuery
from worker.views import CommandRecord, OrderDetail, OrderSummary, RuleFiringView, TaskView

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Seen:
    fingerprint: str
    deliveries: int


@dataclass
class FakeInbox:
    """The inbox as the status worker leaves it: one record per command id."""

    records: dict[UUID, CommandRecord] = field(default_factory=dict)
    fingerprints: dict[UUID, str] = field(default_factory=dict)
    effects_of: dict[UUID, CommandEffects] = field(default_factory=dict)
    reachable: bool = True
    reads: int = 0

    def _read(self) -> None:
        self.reads += 1
        if not self.reachable:
            raise Unavailable("PostgreSQL", "connection refused")

    def seen(self, command_id: UUID) -> Seen | None:
        self._read()
        record = self.records.get(command_id)
        return None if record is None else Seen(self.fingerprints[command_id], record.deliveries)

    def outcome(self, command_id: UUID) -> CommandRecord | None:
        self._read()
        return self.records.get(command_id)

    def effects(self, command_id: UUID) -> CommandEffects:
        self._read()
        return self.effects_of.get(command_id, CommandEffects())

    def record(
        self,
        command: Command,
        outcome: CommandOutcome,
        reason: str | None = None,
        effects: CommandEffects | None = None,
    ) -> None:
        """What the status worker writes for a delivery: the first outcome, or one more count."""
        existing = self.records.get(command.command_id)
        if existing is not None:
            self.records[command.command_id] = existing.model_copy(
                update={"deliveries": existing.deliveries + 1}
            )
            return
        self.records[command.command_id] = CommandRecord(
            command_id=command.command_id,
            command_type=type(command).__name__,
            order_number=command.order_number,
            outcome=outcome,
            reason=reason,
            detail=f"because {reason}" if reason else None,
            correlation_id=None,
            processed_at=NOW,
            deliveries=1,
            last_seen_at=NOW,
        )
        self.fingerprints[command.command_id] = fingerprint(command)
        self.effects_of[command.command_id] = effects or CommandEffects()


@dataclass
class FakeSender:
    """A broker with a status worker behind it: `decide` (if any) records each command's fate."""

    decide: Callable[[Command], None] | None = None
    sent: list[tuple[Command, str | None]] = field(default_factory=list)

    def send(self, command: Command, correlation_id: str | None) -> None:
        self.sent.append((command, correlation_id))
        if self.decide is not None:
            self.decide(command)


@dataclass
class FakeOrders:
    """Orders in memory, listed and paged as the SQL does it."""

    details: dict[str, OrderDetail] = field(default_factory=dict)
    commands_of: dict[str, list[CommandRecord]] = field(default_factory=dict)
    firings_of: dict[str, list[RuleFiringView]] = field(default_factory=dict)
    tasks_of: dict[str, list[TaskView]] = field(default_factory=dict)
    the_workflow: Workflow = field(default_factory=spec_workflow)

    def workflow(self) -> Workflow:
        return self.the_workflow

    def _matching(self, order_filter: OrderFilter) -> list[OrderSummary]:
        def matches(order: OrderSummary) -> bool:
            customer = order_filter.customer
            return (
                (order_filter.status is None or order.status == order_filter.status)
                and (
                    customer is None
                    or customer.lower() in order.customer.name.lower()
                    or customer == order.customer.id
                )
                and (
                    order_filter.number is None
                    or order_filter.number.lower() in order.order_number.lower()
                )
                and (
                    order_filter.customer_type is None
                    or order.customer.type == order_filter.customer_type
                )
                and (order_filter.since is None or order.order_date >= order_filter.since)
                and (order_filter.until is None or order.order_date <= order_filter.until)
            )

        return [order for order in self.details.values() if matches(order)]

    def count_orders(self, order_filter: OrderFilter) -> int:
        return len(self._matching(order_filter))

    def list_orders(
        self, query: OrderListQuery, after: Position | None, limit: int
    ) -> Sequence[OrderSummary]:
        found = sorted(self._matching(query.filter), key=lambda o: o.order_number)
        found.sort(key=lambda o: sort_value(o, query.sort), reverse=query.descending)
        if after is not None:
            position = [(sort_value(o, query.sort), o.order_number) for o in found].index(
                (after.value, after.order_number)
            )
            found = found[position + 1 :]
        return found[:limit]

    def order(self, order_number: str) -> OrderDetail | None:
        return self.details.get(order_number)

    def rule_firings(self, order_number: str) -> Sequence[RuleFiringView]:
        return self.firings_of.get(order_number, [])

    def tasks(self, order_number: str) -> Sequence[TaskView]:
        return self.tasks_of.get(order_number, [])

    def commands(self, order_number: str) -> Sequence[CommandRecord]:
        return self.commands_of.get(order_number, [])


@dataclass
class FakeTasks:
    """The tasks table in memory."""

    rows: dict[UUID, TaskView] = field(default_factory=dict)

    def list_tasks(self, query: TaskQuery) -> Sequence[TaskView]:
        found = [
            task
            for task in self.rows.values()
            if (query.order_number is None or task.order_number == query.order_number)
            and not (query.open_only and task.completed_at is not None)
        ]
        return sorted(found, key=lambda task: (task.due_at, task.task_id))[: query.limit]

    def complete(self, task_id: UUID) -> TaskView | None:
        task = self.rows.get(task_id)
        if task is None or task.completed_at is not None:
            return None
        self.rows[task_id] = task.model_copy(update={"completed_at": NOW})
        return self.rows[task_id]

    def task(self, task_id: UUID) -> TaskView | None:
        return self.rows.get(task_id)
