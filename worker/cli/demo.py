"""`order-status demo`: play a short scenario end to end and print what happened."""

import json
import threading
import time
from datetime import date
from decimal import Decimal
from uuid import UUID, uuid4

import click
import pika

from contracts import ChangeOrderStatus, Command, CreateOrder, Customer, OrderLine
from worker.cli.output import console, table
from worker.config import Settings
from worker.db.connection import connect
from worker.db.migrate import migrate
from worker.db.reads import get_order, wait_for_outcome
from worker.logs import configure_logging
from worker.messaging.broker import connect_declared
from worker.messaging.topology import Topology
from worker.messaging.upstream import publish_command
from worker.runner import WORKERS, run_workers

EVENT_WAIT_SECONDS = 5.0


def _scenario(order_number: str) -> list[tuple[str, Command]]:
    def change(to: str, actor: str, reason: str, **expect: object) -> ChangeOrderStatus:
        return ChangeOrderStatus.model_validate(
            {
                "command_id": uuid4(),
                "order_number": order_number,
                "to_status": to,
                "actor": actor,
                "reason": reason,
                **expect,
            }
        )

    start = change("in_progress", "alice@sales", "customer confirmed")
    return [
        (
            "register the order",
            CreateOrder(
                command_id=uuid4(),
                order_number=order_number,
                customer=Customer(id="C-1001", name="上海示例贸易有限公司", type="enterprise"),
                # Below the example rules' 10000, so no rule moves the order mid-demo.
                amount=Decimal("8000.00"),
                currency="CNY",
                order_date=date.today(),
                lines=(
                    OrderLine(sku="SKU-1", name="服务器", quantity=2, unit_price=Decimal("4000")),
                ),
                actor="erp-sync",
            ),
        ),
        ("start work (待处理 -> 进行中)", start),
        ("the same command again (a redelivery)", start),
        ("complete it (进行中 -> 已完成)", change("completed", "bob@ops", "delivered")),
        ("try to cancel a completed order", change("cancelled", "carol@sales", "changed mind")),
        (
            "reopen, expecting version 2 (stale)",
            change("in_progress", "dave@support", "defect", expected_version=2),
        ),
        (
            "reopen, expecting version 3",
            change("in_progress", "dave@support", "defect reported", expected_version=3),
        ),
    ]


@click.command()
@click.option(
    "--workers/--no-workers",
    default=True,
    show_default=True,
    help="Run the workers inside the demo, or use ones already running (make run).",
)
@click.pass_obj
def demo(settings: Settings, *, workers: bool) -> None:
    """Register an order, move it through the workflow, and show outcomes and events."""
    configure_logging("WARNING", settings.log_format)
    migrate(settings.database_url, settings.migrations_dir)
    topology = Topology.for_settings(settings)
    connect_declared(settings, "demo", topology).release()
    stop = threading.Event()
    runner = threading.Thread(target=run_workers, args=(settings, list(WORKERS), stop), daemon=True)
    if workers:
        runner.start()
    listener = _EventListener(settings.amqp_url, topology)
    try:
        _play(settings, topology, listener)
    finally:
        listener.close()
        stop.set()
        if workers:
            runner.join(timeout=10)


def _play(settings: Settings, topology: Topology, listener: "_EventListener") -> None:
    out = console()
    order_number = f"SO-DEMO-{uuid4().hex[:6].upper()}"
    rows = []
    with connect(settings, "demo", autocommit=True) as conn:
        sent: dict[UUID, int] = {}
        for step, command in _scenario(order_number):
            publish_command(settings.amqp_url, topology, command)
            sent[command.command_id] = sent.get(command.command_id, 0) + 1
            deliveries = sent[command.command_id]
            record = wait_for_outcome(conn, command.command_id, 30, min_deliveries=deliveries)
            outcome = "no outcome within 30s" if record is None else record.outcome.value
            if deliveries > 1:
                outcome = f"duplicate: nothing changed (recorded outcome: {outcome})"
            rows.append((step, outcome, record.reason if record else None))
        out.print(table(f"commands for {order_number}", ("step", "outcome", "reason"), rows))
        events = listener.collect(order_number, expected=6, timeout=EVENT_WAIT_SECONDS)
        out.print(
            table(
                "events published",
                ("type", "routing key", "what"),
                [(e["type"], e["routing_key"], e["what"]) for e in events],
            )
        )
        order = get_order(conn, order_number)
    if order is not None:
        history = [
            (h.version, h.from_status, h.to_status, h.actor, h.reason) for h in order.history
        ]
        out.print(
            table(
                f"history of {order_number} (now {order.status}, version {order.version})",
                ("version", "from", "to", "actor", "reason"),
                history,
            )
        )
    out.print(f"see it again with: order-status orders show {order_number}")


class _EventListener:
    """A consumer of our events, as another service would bind one (plain pika)."""

    def __init__(self, amqp_url: str, topology: Topology) -> None:
        self._connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self._channel = self._connection.channel()
        declared = self._channel.queue_declare("", exclusive=True, auto_delete=True)
        self._queue = declared.method.queue
        self._channel.queue_bind(self._queue, topology.events_exchange, routing_key="#")

    def collect(self, order_number: str, expected: int, timeout: float) -> list[dict[str, str]]:
        events: list[dict[str, str]] = []
        deadline = time.monotonic() + timeout
        while len(events) < expected and time.monotonic() < deadline:
            method, properties, body = self._channel.basic_get(self._queue, auto_ack=True)
            if method is None:
                self._connection.sleep(0.1)
                continue
            payload = json.loads(body)
            if payload.get("order_number") != order_number:
                continue
            what = payload.get("reason") if "detail" in payload else None
            if what is None:
                what = f"{payload.get('from_status') or '-'} -> "
                what += payload.get("to_status") or payload.get("status", "")
            events.append(
                {"type": properties.type, "routing_key": method.routing_key, "what": what}
            )
        return events

    def close(self) -> None:
        if self._connection.is_open:
            self._connection.close()
