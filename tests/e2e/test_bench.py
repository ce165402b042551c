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
    assert (result["commands"], result["messages"]) == (400, 440)
    assert set(result["latency_ms"]) >= {"p50", "p95", "p99"}
    assert set(result["peak_rss_mb"]) == set(WORKERS)
    assert all(mb > 0 for mb in result["peak_rss_mb"].values())
    assert result["ceiling"] is None
    assert result["event_repeats"] == 0
    _assert_run_left_nothing_behind(servers, result["namespace"], result["database"])


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
