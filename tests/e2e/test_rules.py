"""End to end: events from the relay, the rules worker, and what its rules cause."""

import json
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from contracts import Notification, OrderCreated, TaskCreated
from tests.support.broker import QueueReader, publish_raw, unique_queue_name
from tests.support.commands import change_status, create_order, order_number
from tests.support.waiting import eventually
from worker import rules_worker
from worker.cli import main
from worker.config import REPO_EXAMPLE_RULES, Settings
from worker.messaging.topology import Topology
from worker.messaging.upstream import publish_command
from worker.rules.loading import CompiledRule, RuleSet, parse_rules

Conn = psycopg.Connection[tuple[Any, ...]]
StartWorkers = Any

PING_PONG = """
rules:
  - name: ping
    trigger: {event: order.status.changed, to: in_progress}
    actions: [{set_status: pending}]
  - name: pong
    trigger: {event: order.status.changed, from: in_progress, to: pending}
    actions: [{set_status: in_progress}]
"""

STAYED = """
rules:
  - name: stuck-in-pending
    trigger: {stayed_in: pending, for: 1s}
    condition: stayed_hours > 0.0
    actions:
      - create_task: {title: "跟进 ${order_number}", assignee: sales-ops, due_in: 8h}
"""


@pytest.fixture
def notifications(settings: Settings, topology: Topology) -> Iterator[QueueReader]:
    """A queue of the test's own bound to every notification channel."""
    reader = QueueReader(
        settings.amqp_url,
        topology.notifications_exchange,
        "#",
        unique_queue_name(topology, "notifications"),
    )
    yield reader
    reader.close()


@pytest.fixture
def with_rules(settings: Settings, tmp_path: Path) -> Callable[..., Settings]:
    def make(text: str | None = None, **changes: Any) -> Settings:
        path = REPO_EXAMPLE_RULES
        if text is not None:
            path = tmp_path / "rules.yaml"
            path.write_text(text, "utf-8")
        return settings.model_copy(update={"rules_file": path, **changes})

    return make


def order_row(db: Conn, number: str) -> tuple[Any, ...] | None:
    return db.execute(
        "SELECT status, version FROM orders WHERE order_number = %s", (number,)
    ).fetchone()


def tasks_of(db: Conn, number: str) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT title, assignee, rule_name FROM tasks WHERE order_number = %s", (number,)
    ).fetchall()


def firings_of(db: Conn, number: str) -> list[tuple[Any, ...]]:
    return db.execute(
        """SELECT rule_name, outcome, reason, depth FROM rule_firings
           WHERE order_number = %s ORDER BY fired_at, rule_name""",
        (number,),
    ).fetchall()


def test_a_large_order_goes_to_review_with_a_task_and_a_notification(
    settings: Settings,
    topology: Topology,
    notifications: QueueReader,
    with_rules: Callable[..., Settings],
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    start_workers(with_settings=with_rules())  # the example file that ships
    number = order_number()
    publish_command(settings.amqp_url, topology, create_order(number, amount=Decimal("20000")))

    eventually(lambda: order_row(db, number) == ("pending_review", 2))
    assert db.execute(
        """SELECT actor, from_status FROM order_status_history
           WHERE order_number = %s AND version = 2""",
        (number,),
    ).fetchone() == ("rule:large-order-review", "pending")
    assert tasks_of(db, number) == [("审核大额订单", "sales-manager", "large-order-review")]
    [received] = notifications.take(1)
    assert received.routing_key == "sales.managers"
    assert received.properties.type == "Notification"
    notification = Notification.model_validate_json(received.body)
    assert notification.order_number == number
    assert notification.message == f"大额订单 {number}: 20000 CNY, 客户类型 enterprise"
    assert received.properties.message_id == str(notification.notification_id)
    assert notifications.drain() == []

    env = {"ORDERS_DATABASE_URL": settings.database_url, "ORDERS_NAMESPACE": settings.namespace}
    listed = CliRunner().invoke(
        main, ["tasks", "list", "--order", number, "--open", "--json"], env=env
    )
    assert listed.exit_code == 0, listed.output
    assert [(t["title"], t["assignee"], t["completed_at"]) for t in json.loads(listed.output)] == [
        ("审核大额订单", "sales-manager", None)
    ]
    shown = CliRunner().invoke(main, ["orders", "show", number, "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    detail = json.loads(shown.output)
    [firing] = detail["rule_firings"]
    assert (firing["rule_name"], firing["outcome"], firing["depth"]) == (
        "large-order-review",
        "fired",
        0,
    )
    assert firing["facts"]["amount"] == 20000.0
    assert firing["facts"]["customer_type"] == "enterprise"
    assert firing["detail"] == "condition is true: amount > 10000"
    set_status = firing["actions"][0]
    assert (set_status["action"], set_status["target"], set_status["command_outcome"]) == (
        "set_status",
        "pending_review",
        "applied",
    )
    assert [task["title"] for task in detail["tasks"]] == ["审核大额订单"]
    as_text = CliRunner().invoke(main, ["orders", "show", number], env=env)
    assert as_text.exit_code == 0, as_text.output
    for shown_text in ("rule firings", "large-order-review", "amount=20000.0", "审核大额订单"):
        assert shown_text in as_text.output


def test_a_small_order_fires_nothing(
    settings: Settings,
    topology: Topology,
    notifications: QueueReader,
    with_rules: Callable[..., Settings],
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    start_workers(with_settings=with_rules())
    small, large = order_number(), order_number()
    publish_command(settings.amqp_url, topology, create_order(small, amount=Decimal("500")))
    publish_command(settings.amqp_url, topology, create_order(large, amount=Decimal("20000")))

    # Events are judged in order: once the large order's task exists, the small
    # order's event has been judged too.
    eventually(lambda: tasks_of(db, large))
    assert firings_of(db, small) == []
    assert tasks_of(db, small) == []
    assert order_row(db, small) == ("pending", 1)
    received = notifications.take(1) + notifications.drain()
    assert [Notification.model_validate_json(r.body).order_number for r in received] == [large]


def test_the_same_event_delivered_twice_yields_one_task(
    settings: Settings,
    topology: Topology,
    events: QueueReader,
    notifications: QueueReader,
    with_rules: Callable[..., Settings],
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    start_workers(with_settings=with_rules())
    number = order_number()
    publish_command(settings.amqp_url, topology, create_order(number, amount=Decimal("20000")))
    created = events.take_until(lambda got: any(r.routing_key == "order.created" for r in got))
    original = next(r for r in created if r.routing_key == "order.created")
    assert OrderCreated.model_validate_json(original.body).order_number == number
    eventually(lambda: tasks_of(db, number))

    # The broker may deliver an event again: the same bytes, the same message id.
    props = original.properties
    publish_raw(
        settings.amqp_url,
        topology.events_exchange,
        "order.created",
        original.body,
        content_type=props.content_type,
        message_id=props.message_id,
        type=props.type,
        correlation_id=props.correlation_id,
        delivery_mode=2,
    )
    sentinel = order_number()
    publish_command(settings.amqp_url, topology, create_order(sentinel, amount=Decimal("30000")))
    eventually(lambda: tasks_of(db, sentinel))

    assert len(tasks_of(db, number)) == 1
    assert firings_of(db, number) == [("large-order-review", "fired", None, 0)]
    assert order_row(db, number) == ("pending_review", 2)
    received = notifications.take(2) + notifications.drain()
    assert sorted(
        Notification.model_validate_json(r.body).order_number for r in received
    ) == sorted([number, sentinel])
    task_events = [r for r in events.drain() if r.routing_key == "task.created"]
    assert {TaskCreated.model_validate_json(r.body).order_number for r in task_events} >= {number}


def test_rules_that_bounce_an_order_stop_at_the_depth_limit(
    settings: Settings,
    topology: Topology,
    with_rules: Callable[..., Settings],
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    start_workers(with_settings=with_rules(PING_PONG))
    number = order_number()
    publish_command(settings.amqp_url, topology, create_order(number))
    publish_command(settings.amqp_url, topology, change_status(number, "in_progress"))

    stopped = eventually(
        lambda: db.execute(
            """SELECT rule_name, reason, depth, detail FROM rule_firings
               WHERE order_number = %s AND outcome = 'stopped'""",
            (number,),
        ).fetchall()
    )
    assert [(rule, reason, depth) for rule, reason, depth, _ in stopped] == [
        ("pong", "depth_limit", 5)
    ]
    assert "ORDERS_RULES_MAX_DEPTH" in stopped[0][3]
    # created, alice's move, then five moves caused by rules.
    assert order_row(db, number) == ("pending", 7)
    actors = [
        row[0]
        for row in db.execute(
            "SELECT actor FROM order_status_history WHERE order_number = %s ORDER BY version",
            (number,),
        )
    ]
    assert actors == ["erp-sync", "alice", *["rule:ping", "rule:pong"] * 2, "rule:ping"]
    fired = [f for f in firings_of(db, number) if f[1] == "fired"]
    assert [depth for _, _, _, depth in fired] == [0, 1, 2, 3, 4]


def test_a_time_based_rule_fires_once_per_stay(
    settings: Settings,
    topology: Topology,
    with_rules: Callable[..., Settings],
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    start_workers(with_settings=with_rules(STAYED, rules_scan_seconds=0.2))
    first = order_number()
    publish_command(settings.amqp_url, topology, create_order(first))
    eventually(lambda: tasks_of(db, first))

    # A second order needs more scans than the first one's firing took: by the
    # time it has its task, the first has been found again and again.
    second = order_number()
    publish_command(settings.amqp_url, topology, create_order(second))
    eventually(lambda: tasks_of(db, second))

    assert tasks_of(db, first) == [(f"跟进 {first}", "sales-ops", "stuck-in-pending")]
    assert firings_of(db, first) == [("stuck-in-pending", "fired", None, 0)]
    [(stayed_hours,)] = db.execute(
        "SELECT (facts->>'stayed_hours')::float FROM rule_firings WHERE order_number = %s",
        (first,),
    ).fetchall()
    assert stayed_hours >= 1 / 3600


FAILING_ACTION = """
rules:
  - name: impossible
    trigger: order.created
    actions:
      - set_status: completed
      - create_task: {title: still created, assignee: someone}
  - name: independent
    trigger: order.created
    actions: [{create_task: {title: from another rule, assignee: someone}}]
"""


def test_a_failing_action_is_recorded_and_other_rules_still_run(
    settings: Settings,
    topology: Topology,
    with_rules: Callable[..., Settings],
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    start_workers(with_settings=with_rules(FAILING_ACTION))
    number = order_number()
    publish_command(settings.amqp_url, topology, create_order(number))

    eventually(lambda: len(tasks_of(db, number)) == 2)
    actions = db.execute(
        """SELECT a.rule_name, a.position, a.action, a.outcome, a.reason, a.detail
           FROM rule_actions a JOIN rule_firings f USING (event_id, rule_name)
           WHERE f.order_number = %s ORDER BY a.rule_name, a.position""",
        (number,),
    ).fetchall()
    assert [row[:5] for row in actions] == [
        ("impossible", 1, "set_status", "failed", "invalid_transition"),
        ("impossible", 2, "create_task", "queued", None),
        ("independent", 1, "create_task", "queued", None),
    ]
    assert "pending -> completed is not allowed" in actions[0][5]
    assert order_row(db, number) == ("pending", 1)
    assert db.execute("SELECT count(*) FROM outbox WHERE exchange = 'commands'").fetchone() == (0,)


def test_an_unreadable_event_is_dead_lettered_by_the_rules_worker(
    settings: Settings,
    topology: Topology,
    dead_letters: QueueReader,
    with_rules: Callable[..., Settings],
    start_workers: StartWorkers,
) -> None:
    start_workers("rules", with_settings=with_rules())
    publish_raw(
        settings.amqp_url,
        topology.events_exchange,
        "order.created",
        b"{not json",
        content_type="application/json",
        type="OrderCreated",
        message_id="broken-1",
    )
    [copy] = dead_letters.take(1)
    assert copy.properties.message_id == "broken-1"
    assert copy.headers["x-dead-letter-reason"] == "malformed_json"
    assert copy.headers["x-source-queue"] == topology.rules_queue
    assert copy.body == b"{not json"


def test_rules_check_finds_statuses_the_workflow_does_not_have(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        """
rules:
  - name: ship-it
    trigger: {event: order.status.changed, to: completed}
    actions: [{set_status: shipped}]
""",
        "utf-8",
    )
    env = {"ORDERS_DATABASE_URL": settings.database_url}
    result = CliRunner().invoke(main, ["rules", "check", str(path)], env=env)
    assert result.exit_code == 1
    assert "rule 'ship-it': unknown status 'shipped'; the workflow has pending," in result.stderr
    example = CliRunner().invoke(main, ["rules", "check", str(REPO_EXAMPLE_RULES)], env=env)
    assert example.exit_code == 0, example.output
    assert example.stderr == ""


STAY_PING_PONG = """
rules:
  - name: start-work
    trigger: {stayed_in: pending, for: 1s}
    actions: [{set_status: in_progress}]
  - name: send-back
    trigger: {event: order.status.changed, from: pending, to: in_progress}
    actions: [{set_status: pending}]
"""


def test_a_bounce_through_a_stay_stops_at_the_depth_limit(
    settings: Settings,
    topology: Topology,
    with_rules: Callable[..., Settings],
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    start_workers(with_settings=with_rules(STAY_PING_PONG, rules_scan_seconds=0.2))
    number = order_number()
    publish_command(settings.amqp_url, topology, create_order(number))

    stopped = eventually(
        lambda: db.execute(
            """SELECT rule_name, reason, depth FROM rule_firings
               WHERE order_number = %s AND outcome = 'stopped'""",
            (number,),
        ).fetchall(),
        timeout=30,
    )
    # Each stay carries on the depth of the move back to pending that began it.
    assert stopped == [("send-back", "depth_limit", 5)]
    history = db.execute(
        """SELECT actor, rule_depth FROM order_status_history
           WHERE order_number = %s ORDER BY version""",
        (number,),
    ).fetchall()
    assert history == [
        ("erp-sync", 0),
        *[("rule:start-work", 1), ("rule:send-back", 2)],
        *[("rule:start-work", 3), ("rule:send-back", 4)],
        ("rule:start-work", 5),
    ]
    assert order_row(db, number) == ("in_progress", 6)


STAYS = """
rules:
  - name: a-while
    trigger: {stayed_in: pending, for: 1s}
    condition: stayed_hours > 0.0005
    actions:
      - create_task: {title: "follow up v${version}", assignee: sales-ops}
  - name: an-hour
    trigger: {stayed_in: pending, for: 1h}
    actions:
      - create_task: {title: "too late", assignee: sales-ops}
"""


def test_a_stay_fires_once_due_and_condition_true_and_again_after_re_entering(
    settings: Settings,
    topology: Topology,
    with_rules: Callable[..., Settings],
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    start_workers(with_settings=with_rules(STAYS, rules_scan_seconds=0.2))
    number = order_number()
    publish_command(settings.amqp_url, topology, create_order(number))

    # Scans find the stay after 1s while its condition (1.8s) is still false:
    # the stay is judged again on later scans, and fires once the condition holds.
    eventually(lambda: tasks_of(db, number), timeout=30)
    publish_command(settings.amqp_url, topology, change_status(number, "in_progress"))
    publish_command(settings.amqp_url, topology, change_status(number, "pending"))
    eventually(lambda: len(tasks_of(db, number)) == 2, timeout=30)

    assert sorted(tasks_of(db, number)) == [
        ("follow up v1", "sales-ops", "a-while"),
        ("follow up v3", "sales-ops", "a-while"),
    ]
    firings = db.execute(
        """SELECT rule_name, outcome, order_version, (facts->>'stayed_hours')::float
           FROM rule_firings WHERE order_number = %s ORDER BY order_version""",
        (number,),
    ).fetchall()
    assert [row[:3] for row in firings] == [("a-while", "fired", 1), ("a-while", "fired", 3)]
    assert all(hours > 0.0005 for *_, hours in firings)


REFUSE_FIRINGS = """
CREATE FUNCTION refuse_firings_of_one_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.order_number = '{number}' AND NEW.reason IS DISTINCT FROM 'record_failed' THEN
        RAISE EXCEPTION 'refused for this test' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER refuse_firings_of_one_order BEFORE INSERT ON rule_firings
    FOR EACH ROW EXECUTE FUNCTION refuse_firings_of_one_order();
"""


def test_a_stay_that_cannot_be_recorded_is_failed_and_the_scan_goes_on(
    settings: Settings,
    topology: Topology,
    with_rules: Callable[..., Settings],
    start_workers: StartWorkers,
    db: Conn,
) -> None:
    blocked, other = order_number(), order_number()
    # The database refuses the first order's firing (and its firing as failed
    # by the action's savepoint): only a record of the failure itself gets in.
    db.execute(REFUSE_FIRINGS.replace("{number}", blocked))
    publish_command(settings.amqp_url, topology, create_order(blocked))
    start_workers("status-worker", "relay")
    eventually(lambda: order_row(db, blocked))
    publish_command(settings.amqp_url, topology, create_order(other))
    eventually(lambda: order_row(db, other))
    start_workers("rules", with_settings=with_rules(STAYED, rules_scan_seconds=0.2))

    eventually(lambda: tasks_of(db, other), timeout=30)
    assert tasks_of(db, blocked) == []
    [(outcome, reason, detail)] = db.execute(
        "SELECT outcome, reason, detail FROM rule_firings WHERE order_number = %s", (blocked,)
    ).fetchall()
    assert (outcome, reason) == ("failed", "record_failed")
    assert "refused for this test" in detail


def test_an_event_that_cannot_be_judged_is_dead_lettered_and_the_worker_goes_on(
    settings: Settings,
    topology: Topology,
    dead_letters: QueueReader,
    start_workers: StartWorkers,
) -> None:
    # A rule whose templates were never compiled: judging it raises, as a bug would.
    [rule] = parse_rules(
        "rules:\n  - {name: tell, trigger: order.created, "
        "actions: [{notify: {channel: ops, message: 'new ${order_number}'}}]}\n"
    ).rules
    broken = RuleSet((CompiledRule(rule.spec, rule.condition, templates={}),))
    start_workers("status-worker", "relay")
    stop = threading.Event()
    worker = rules_worker.build(settings, stop, rules=broken)
    crashed: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as error:
            crashed.append(error)

    thread = threading.Thread(target=run, name="rules-under-test", daemon=True)
    thread.start()
    try:
        first, second = order_number(), order_number()
        publish_command(settings.amqp_url, topology, create_order(first))
        publish_command(settings.amqp_url, topology, create_order(second))
        copies = dead_letters.take(2)
        assert [OrderCreated.model_validate_json(c.body).order_number for c in copies] == [
            first,
            second,
        ]
        for copy in copies:
            assert copy.headers["x-dead-letter-reason"] == "apply_failed"
            assert copy.headers["x-source-queue"] == topology.rules_queue
            assert copy.headers["x-dead-letter-detail"].startswith("judging failed: KeyError")
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(timeout=30)
    assert crashed == []
    assert not thread.is_alive()
