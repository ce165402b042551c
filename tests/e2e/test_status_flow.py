"""End to end: commands published to RabbitMQ, applied by the workers, events out."""

import json
import pickle
import time
from typing import Any
from uuid import uuid4

import jsonschema
import pika
import psycopg

from contracts import OrderCreated, OrderStatusChanged, OrderStatusChangeRejected
from contracts.schemas_export import SCHEMA_DIR
from tests.conftest import RunningWorkers
from tests.support.broker import QueueReader, message_count, publish_raw
from tests.support.commands import change_status, create_order, order_number
from tests.support.waiting import eventually
from worker.config import Settings
from worker.messaging.topology import Topology
from worker.messaging.upstream import publish_command

Conn = psycopg.Connection[tuple[Any, ...]]
StartWorkers = Any


def outcome_of(db: Conn, command_id: Any) -> tuple[Any, ...] | None:
    return db.execute(
        "SELECT outcome, reason, deliveries FROM processed_commands WHERE command_id = %s",
        (command_id,),
    ).fetchone()


def history_count(db: Conn, number: str | None = None) -> int:
    row = db.execute(
        """SELECT count(*) FROM order_status_history
           WHERE %(n)s::text IS NULL OR order_number = %(n)s""",
        {"n": number},
    ).fetchone()
    return int(row[0]) if row else 0


def test_a_published_change_is_applied_and_its_event_reaches_a_bound_queue(
    settings: Settings,
    topology: Topology,
    events: QueueReader,
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    start_workers()
    number = order_number()
    create = create_order(number)
    change = change_status(number, "in_progress", reason="customer confirmed")
    publish_command(settings.amqp_url, topology, create, correlation_id="corr-e2e")
    publish_command(settings.amqp_url, topology, change, correlation_id="corr-e2e")

    created, changed = events.take(2)

    assert created.routing_key == "order.created"
    assert OrderCreated.model_validate_json(created.body).order_number == number
    assert changed.routing_key == "order.status.changed"
    event = OrderStatusChanged.model_validate_json(changed.body)
    assert (event.from_status, event.to_status, event.version) == ("pending", "in_progress", 2)
    assert (event.actor, event.reason, event.command_id) == (
        "alice",
        "customer confirmed",
        change.command_id,
    )
    assert event.order.customer_type == "enterprise"
    properties = changed.properties
    assert properties.content_type == "application/json"
    assert properties.delivery_mode == 2
    assert properties.type == "OrderStatusChanged"
    assert properties.message_id == str(event.event_id)
    assert properties.correlation_id == "corr-e2e"
    assert event.correlation_id == "corr-e2e"
    assert changed.headers["causation_id"] == str(change.command_id)
    assert changed.headers["order_number"] == number

    assert outcome_of(db, change.command_id) == ("applied", None, 1)
    assert db.execute(
        "SELECT status, version FROM orders WHERE order_number = %s", (number,)
    ).fetchone() == ("in_progress", 2)
    eventually(
        lambda: (
            db.execute("SELECT bool_and(published_at IS NOT NULL) FROM outbox").fetchone()
            == (True,)
        )
    )
    eventually(lambda: message_count(settings.amqp_url, topology.status_worker_queue) == 0)


def test_the_same_command_delivered_twice_has_one_history_row_and_one_event(
    settings: Settings,
    topology: Topology,
    events: QueueReader,
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    start_workers()
    number = order_number()
    change = change_status(number, "in_progress")
    publish_command(settings.amqp_url, topology, create_order(number))
    publish_command(settings.amqp_url, topology, change)
    publish_command(settings.amqp_url, topology, change)

    eventually(lambda: (outcome_of(db, change.command_id) or (None, None, 0))[2] == 2)
    received = events.take(2) + events.drain(settle_seconds=1.0)

    assert [r.routing_key for r in received] == ["order.created", "order.status.changed"]
    assert history_count(db, number) == 2
    assert outcome_of(db, change.command_id) == ("applied", None, 2)


def test_business_rejections_are_recorded_emitted_and_acked(
    settings: Settings,
    topology: Topology,
    events: QueueReader,
    dead_letters: QueueReader,
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    start_workers()
    number = order_number()
    publish_command(settings.amqp_url, topology, create_order(number))
    refused = {
        "unknown_order": change_status("SO-NOT-THERE", "in_progress"),
        "invalid_transition": change_status(number, "completed"),
        "version_conflict": change_status(number, "in_progress", expected_status="pending_review"),
        "stale_version": change_status(number, "in_progress", expected_version=9),
        "unknown_status": change_status(number, "shipped"),
    }
    for command in refused.values():
        publish_command(settings.amqp_url, topology, command)

    received = events.take(1 + len(refused))

    rejections = [OrderStatusChangeRejected.model_validate_json(r.body) for r in received[1:]]
    assert [r.routing_key for r in received[1:]] == ["order.status.rejected"] * len(refused)
    assert [(e.command_id, e.reason.value) for e in rejections] == [
        (refused["unknown_order"].command_id, "unknown_order"),
        (refused["invalid_transition"].command_id, "invalid_transition"),
        (refused["version_conflict"].command_id, "version_conflict"),
        (refused["stale_version"].command_id, "version_conflict"),
        (refused["unknown_status"].command_id, "unknown_status"),
    ]
    for event in rejections:
        assert event.detail
        assert outcome_of(db, event.command_id) == ("rejected", event.reason.value, 1)
    assert history_count(db, number) == 1
    eventually(lambda: message_count(settings.amqp_url, topology.status_worker_queue) == 0)
    assert dead_letters.drain() == []


def test_a_message_published_by_hand_with_pika_is_applied(
    settings: Settings,
    topology: Topology,
    events: QueueReader,
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    """No project code on the sending side: the contract is the JSON and the AMQP properties."""
    start_workers()
    number = order_number()
    create_id, change_id = uuid4(), uuid4()
    create_body = json.dumps(
        {
            "command_id": str(create_id),
            "order_number": number,
            "customer": {"id": "C-9", "name": "Hand Made Co", "type": "smb"},
            "amount": 20000,
            "currency": "USD",
            "order_date": "2026-11-26",
        }
    )
    change_body = json.dumps(
        {
            "command_id": str(change_id),
            "order_number": number,
            "to_status": "pending_review",
            "actor": "erp",
            "reason": "large amount",
        }
    )
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    for routing_key, body in (("order.create", create_body), ("order.status.change", change_body)):
        channel.basic_publish(
            exchange=f"{settings.namespace}.commands",
            routing_key=routing_key,
            body=body.encode(),
            properties=pika.BasicProperties(
                content_type="application/json", delivery_mode=2, correlation_id="hand-1"
            ),
            mandatory=True,
        )
    connection.close()

    _, changed = events.take(2)

    assert json.loads(changed.body)["to_status"] == "pending_review"
    assert changed.properties.correlation_id == "hand-1"
    assert outcome_of(db, create_id) == ("applied", None, 1)
    assert outcome_of(db, change_id) == ("applied", None, 1)
    assert db.execute(
        "SELECT status, amount FROM orders WHERE order_number = %s", (number,)
    ).fetchone() == ("pending_review", 20000)


def test_poison_goes_to_the_dead_letter_exchange_with_its_reason_and_the_worker_carries_on(
    settings: Settings,
    topology: Topology,
    events: QueueReader,
    dead_letters: QueueReader,
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    start_workers()
    exchange = topology.commands_exchange
    poison: list[tuple[str, bytes, dict[str, Any]]] = [
        ("malformed_json", b'{"command_id": "broken', {"content_type": "application/json"}),
        (
            "schema_violation",
            json.dumps({"command_id": str(uuid4()), "order_number": "SO-1"}).encode(),
            {"content_type": "application/json"},
        ),
        (
            "unknown_type",
            json.dumps({"command_id": str(uuid4())}).encode(),
            {"content_type": "application/json", "type": "DeleteOrder"},
        ),
        (
            "unsupported_content_type",
            pickle.dumps({"command_id": "x"}),
            {"content_type": "application/x-python-serialize"},
        ),
    ]
    for index, (_, body, properties) in enumerate(poison):
        publish_raw(
            settings.amqp_url,
            exchange,
            "order.status.change",
            body,
            message_id=f"poison-{index}",
            delivery_mode=2,
            headers={"sender": "test"},
            **properties,
        )
    good = create_order(order_number())
    publish_command(settings.amqp_url, topology, good)

    dead = dead_letters.take(len(poison))
    [created] = events.take(1)

    assert [d.headers["x-dead-letter-reason"] for d in dead] == [p[0] for p in poison]
    for index, (letter, (_, body, properties)) in enumerate(zip(dead, poison, strict=True)):
        assert letter.body == body, "the body must be kept byte for byte"
        assert letter.properties.message_id == f"poison-{index}"
        assert letter.properties.content_type == properties["content_type"]
        assert letter.headers["sender"] == "test"
        assert letter.headers["x-dead-letter-detail"]
        assert letter.headers["x-original-exchange"] == exchange
        assert letter.headers["x-original-routing-key"] == "order.status.change"
        assert letter.headers["x-source-queue"] == topology.status_worker_queue
    assert "actor: Field required" in dead[1].headers["x-dead-letter-detail"]
    assert created.routing_key == "order.created"
    assert outcome_of(db, good.command_id) == ("applied", None, 1)
    assert db.execute("SELECT count(*) FROM processed_commands").fetchone() == (1,)
    eventually(lambda: message_count(settings.amqp_url, topology.status_worker_queue) == 0)
    # The dead-letter ingester moves them from the dead-letter queue into the store.
    stored = "SELECT reason FROM dead_letters ORDER BY id"
    eventually(lambda: db.execute(stored).fetchall() == [(p[0],) for p in poison])
    eventually(lambda: message_count(settings.amqp_url, topology.dead_letter_queue) == 0)


def test_a_command_id_reused_for_other_content_is_dead_lettered(
    settings: Settings,
    topology: Topology,
    dead_letters: QueueReader,
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    start_workers()
    number = order_number()
    original = change_status(number, "in_progress")
    publish_command(settings.amqp_url, topology, create_order(number))
    publish_command(settings.amqp_url, topology, original)
    eventually(lambda: outcome_of(db, original.command_id))
    reused = change_status(number, "cancelled", command_id=original.command_id)
    publish_command(settings.amqp_url, topology, reused)

    [letter] = dead_letters.take(1)

    assert letter.headers["x-dead-letter-reason"] == "command_id_reused"
    assert "recorded outcome: applied" in letter.headers["x-dead-letter-detail"]
    assert json.loads(letter.body)["to_status"] == "cancelled"
    assert db.execute(
        "SELECT status FROM orders WHERE order_number = %s", (number,)
    ).fetchone() == ("in_progress",)


def test_every_history_row_has_one_event_on_the_wire(
    settings: Settings,
    topology: Topology,
    events: QueueReader,
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    start_workers()
    numbers = [order_number() for _ in range(10)]
    commands: list[Any] = []
    for number in numbers:
        commands += [
            create_order(number),
            change_status(number, "in_progress"),
            change_status(number, "completed"),
            change_status(number, "cancelled"),  # refused
            change_status(number, "in_progress", expected_version=3),  # reopen
        ]
    for command in commands + commands[::3]:  # a third of them delivered twice
        publish_command(settings.amqp_url, topology, command)

    eventually(
        lambda: (
            db.execute("SELECT sum(deliveries) FROM processed_commands").fetchone()
            == (len(commands) + len(commands[::3]),)
        )
    )
    received = events.take(len(numbers) * 5) + events.drain(settle_seconds=1.0)

    changes = [r for r in received if r.routing_key != "order.status.rejected"]
    assert len(changes) == history_count(db) == len(numbers) * 4
    assert len({r.properties.message_id for r in received}) == len(received)
    per_order: dict[str, list[int]] = {}
    for r in changes:
        payload = r.json()
        per_order.setdefault(payload["order_number"], []).append(payload["version"])
    assert all(versions == [1, 2, 3, 4] for versions in per_order.values()), per_order


def test_workers_stop_cleanly_when_asked(start_workers: StartWorkers) -> None:
    running: RunningWorkers = start_workers()
    assert running.stop() is True


def test_poison_keeps_its_properties_and_those_that_would_hurt_become_headers(
    settings: Settings,
    topology: Topology,
    dead_letters: QueueReader,
    start_workers: StartWorkers,
) -> None:
    start_workers("status-worker")
    publish_raw(
        settings.amqp_url,
        topology.commands_exchange,
        "order.status.change",
        b"not json at all",
        content_type="application/json",
        priority=5,
        expiration="60000",
        user_id="guest",
        app_id="legacy-erp",
        reply_to="erp.replies",
    )

    [letter] = dead_letters.take(1)

    assert letter.headers["x-dead-letter-reason"] == "malformed_json"
    assert letter.properties.priority == 5
    assert (letter.properties.app_id, letter.properties.reply_to) == ("legacy-erp", "erp.replies")
    assert letter.properties.expiration is None, "a TTL would expire the dead letter"
    assert letter.headers["x-original-expiration"] == "60000"
    assert letter.headers["x-original-user-id"] == "guest"


def test_poison_is_not_acked_until_the_dead_letter_queue_has_it(
    settings: Settings,
    topology: Topology,
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    """With the dead-letter binding gone the copy is unroutable: keep the original."""
    start_workers("status-worker")
    first = create_order(order_number())
    publish_command(settings.amqp_url, topology, first)
    eventually(lambda: outcome_of(db, first.command_id))  # the worker is consuming
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    connection.channel().queue_unbind(
        topology.dead_letter_queue, topology.dead_letter_exchange, routing_key="#"
    )
    connection.close()

    publish_raw(
        settings.amqp_url, topology.commands_exchange, "order.create", b"{", delivery_mode=2
    )

    # The copy comes back unroutable; the worker reconnects, re-declares, tries again.
    eventually(lambda: message_count(settings.amqp_url, topology.dead_letter_queue) == 1)
    eventually(lambda: message_count(settings.amqp_url, topology.status_worker_queue) == 0)


def test_events_on_the_wire_validate_against_the_published_schemas(
    settings: Settings,
    topology: Topology,
    events: QueueReader,
    start_workers: StartWorkers,
) -> None:
    start_workers()
    number = order_number()
    for command in (
        create_order(number),
        change_status(number, "in_progress"),
        change_status(number, "archived"),
    ):
        publish_command(settings.amqp_url, topology, command)

    for received in events.take(3):
        name = received.properties.type
        schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text("utf-8"))
        jsonschema.validate(received.json(), schema)
        assert schema["x-routing-key"] == received.routing_key


def test_a_workflow_change_reaches_running_workers_without_a_restart(
    settings: Settings,
    topology: Topology,
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    refreshing = settings.model_copy(update={"workflow_refresh_seconds": 0.2})
    start_workers("status-worker", with_settings=refreshing)
    number = order_number()
    publish_command(settings.amqp_url, topology, create_order(number))
    refused = change_status(number, "completed")
    publish_command(settings.amqp_url, topology, refused)
    eventually(lambda: outcome_of(db, refused.command_id))
    assert outcome_of(db, refused.command_id) == ("rejected", "invalid_transition", 1)

    # An administrator allows orders to be completed straight from pending.
    db.execute("INSERT INTO order_status_transitions VALUES ('pending', 'completed')")
    allowed = change_status(number, "completed")
    time.sleep(0.5)
    publish_command(settings.amqp_url, topology, allowed)

    eventually(lambda: outcome_of(db, allowed.command_id))
    assert outcome_of(db, allowed.command_id) == ("applied", None, 1)
