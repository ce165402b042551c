"""The benchmark checks its own run; here only that check is tested, never its timing."""

import json
import os
import subprocess
import sys
from typing import Any

import pika
import psycopg
import pytest

from tests.support.servers import Servers
from worker.bench.observer import Observed
from worker.bench.verify import verify
from worker.bench.workload import Expect, plan_workload
from worker.db.apply import apply_commands
from worker.db.workflow_store import load_workflow
from worker.domain.incoming import IncomingCommand
from worker.messaging.decoding import Envelope, decode_command
from worker.runner import WORKERS

Conn = psycopg.Connection[tuple[Any, ...]]


def test_a_small_bench_run_with_repeats_and_refusals_passes_its_own_check(
    servers: Servers,
) -> None:
    env = {
        **os.environ,
        "ORDERS_DATABASE_URL": servers.postgres_url,
        "ORDERS_AMQP_URL": servers.amqp_url,
    }
    completed = subprocess.run(
        [sys.executable, "-m", "worker", "bench", "--orders", "20", "--commands", "400",
         "--duplicates", "0.1", "--invalid", "0.1", "--no-ceiling", "--json"],
        env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip

    assert completed.returncode == 0, completed.stdout + completed.stderr
    result = json.loads(completed.stdout)
    assert result["check"] == {"passed": True, "problems": []}
    assert (result["commands"], result["messages"], result["repeat"]) == (400, 440, 1)
    assert set(result["latency_ms"]) >= {"p50", "p95", "p99"}
    assert set(result["peak_rss_mb"]) == set(WORKERS)
    assert all(mb > 0 for mb in result["peak_rss_mb"].values())
    assert result["ceiling"] is None
    assert result["event_repeats"] == 0
    _assert_cpu_per_command_adds_up(result["cpu_us_per_command"], list(WORKERS))
    [run] = result["runs"]
    assert run["ours"]["check"] == {"passed": True, "problems": []}
    assert run["ours"]["commands_per_second"] == result["commands_per_second"] > 0
    reference = result["reference"]
    assert reference["batch_size"] == 500
    for name in ("without_database", "with_database"):
        assert run[name]["check"] == {"passed": True, "problems": []}
        assert run[name]["with_database"] == (name == "with_database")
        assert run[name]["messages"] == 440
        assert run[name]["commands_per_second"] == reference[name]["commands_per_second"] > 0
        assert set(run[name]["peak_rss_mb"]) == {"reference-commands", "reference-drain"}
        _assert_cpu_per_command_adds_up(
            run[name]["cpu_us_per_command"], ["reference-commands", "reference-drain"]
        )
    ours = result["commands_per_second"]
    assert result["ratio_to_broker_limit"] == round(
        ours / reference["without_database"]["commands_per_second"], 3
    )
    assert result["ratio_to_reference_with_db"] == round(
        ours / reference["with_database"]["commands_per_second"], 3
    )
    assert (run["ratio_to_broker_limit"], run["ratio_to_reference_with_db"]) == (
        result["ratio_to_broker_limit"],
        result["ratio_to_reference_with_db"],
    )
    for figures in (run["ours"], run["without_database"], run["with_database"]):
        _assert_run_left_nothing_behind(servers, figures["namespace"], figures["database"])


def _assert_cpu_per_command_adds_up(per_command: dict[str, float], processes: list[str]) -> None:
    """Every process of the run is there; the servers too where this host can read them."""
    parts = {name: us for name, us in per_command.items() if name != "total"}
    assert set(parts) - {"rabbitmq", "postgresql"} == set(processes)
    assert all(us >= 0 for us in parts.values())
    assert per_command["total"] > 0
    assert abs(per_command["total"] - sum(parts.values())) <= 0.1 * len(parts)


def _assert_run_left_nothing_behind(servers: Servers, namespace: str, database: str) -> None:
    with psycopg.connect(servers.postgres_url, autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
    assert row is None, f"{database} was left behind"
    connection = pika.BlockingConnection(pika.URLParameters(servers.amqp_url))
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            connection.channel().queue_declare(f"{namespace}.status-worker", passive=True)
    finally:
        connection.close()


def test_the_check_reports_a_lost_command_and_a_doubled_event(db: Conn, database_url: str) -> None:
    workload = plan_workload(
        load_workflow(db), orders=3, commands=12, duplicates=0.0, invalid=0.2, prefix="CHK"
    )
    messages = [*workload.registrations, *workload.changes]
    lost = workload.changes[-1]
    with psycopg.connect(database_url) as worker_conn:
        commands = [_decoded(m.type_name, m.routing_key, m.body) for m in messages if m != lost]
        apply_commands(worker_conn, load_workflow(worker_conn), commands)
    doubled = next(i for i, expect in workload.expected.items() if expect is Expect.APPLIED)
    db.execute(
        "INSERT INTO outbox (event_id, routing_key, message_type, payload, order_number, "
        "command_id, published_at) SELECT gen_random_uuid(), routing_key, message_type, payload, "
        "order_number, command_id, now() FROM outbox WHERE command_id = %s",
        (doubled,),
    )
    db.execute("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
    observed = Observed(first_seen=dict.fromkeys(workload.expected, 0.0))

    verdict = verify(database_url, workload, observed)

    assert not verdict.passed
    assert f"commands with no recorded outcome: 1 (e.g. {lost.command_id})" in verdict.problems
    [events] = [p for p in verdict.problems if "exactly one published event" in p]
    assert events.startswith("commands without exactly one published event: 2 ")
    assert doubled in events
    assert lost.command_id in events


def _decoded(type_name: str, routing_key: str, body: bytes) -> IncomingCommand:
    decoded = decode_command(Envelope(body=body, routing_key=routing_key, type_name=type_name))
    assert isinstance(decoded, IncomingCommand)
    return decoded
