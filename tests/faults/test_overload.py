"""Overload: a backlog waiting before the workers start, and a storm of malformed messages."""

import itertools
import time
from typing import Any

import psycopg
import pytest

from tests.support.commands import create_order
from tests.support.fault_run import FaultRun
from tests.support.processes import wait_until
from tests.support.producer import RawMessage
from tests.support.workload import order_walks

pytestmark = pytest.mark.timeout(900)

MAX_PEAK_RSS_MB = 300
"""A worker's resident high-water mark must not grow with the backlog: prefetch bounds it."""


@pytest.mark.parametrize(
    ("orders", "changes"),
    [
        pytest.param(300, 9, id="quick-3000"),
        pytest.param(20_000, 9, id="full-200000", marks=pytest.mark.faults),
    ],
)
def test_a_backlog_drains_with_bounded_memory(
    fault_run: FaultRun, orders: int, changes: int
) -> None:
    commands = order_walks(orders, changes, seed=51, duplicates=0)
    fault_run.producer.send(commands, window=2000)
    began = time.monotonic()
    fault_run.start()
    fault_run.wait_for_progress(len(commands) // 4, timeout=600)
    probe = create_order()
    probe_sent = time.monotonic()
    fault_run.producer.send([probe])
    assert wait_until(lambda: outcome_of(fault_run, str(probe.command_id)), 600)
    probe_latency = time.monotonic() - probe_sent
    assert fault_run.drain(timeout=900)
    drained = time.monotonic() - began
    peaks = {role: round(worker.peak_rss_mb(), 1) for role, worker in fault_run.workers.items()}
    fault_run.figures.update(
        backlog=len(commands),
        drain_seconds=round(drained, 1),
        commands_per_second=round(len(commands) / drained),
        new_command_latency_seconds=round(probe_latency, 1),
        peak_rss_mb=peaks,
    )
    fault_run.finish()
    assert max(peaks.values()) < MAX_PEAK_RSS_MB, peaks


def outcome_of(run: FaultRun, command_id: str) -> bool:
    with psycopg.connect(run.settings.database_url) as db:
        row = db.execute(
            "SELECT 1 FROM processed_commands WHERE command_id = %s", (command_id,)
        ).fetchone()
    return row is not None


BAD_KINDS: list[tuple[str, dict[str, Any]]] = [
    ("malformed_json", {"body": b'{"order_number": '}),
    (
        "schema_violation",
        {"body": b'{"order_number": 7, "to_status": []}', "type_name": "ChangeOrderStatus"},
    ),
    ("unknown_type", {"body": b"{}", "type_name": "ExplodeOrder"}),
    ("unsupported_content_type", {"body": b"\x80\x04K\x01.", "content_type": "application/pickle"}),
]


def bad_messages(count: int) -> list[tuple[str, RawMessage]]:
    kinds = itertools.cycle(BAD_KINDS)
    made = []
    for index in range(count):
        reason, fields = next(kinds)
        made.append(
            (
                reason,
                RawMessage(routing_key="order.status.change", message_id=f"bad-{index}", **fields),
            )
        )
    return made


@pytest.mark.parametrize(
    ("bad", "orders"),
    [
        pytest.param(500, 30, id="quick-500"),
        pytest.param(20_000, 300, id="full-20000", marks=pytest.mark.faults),
    ],
)
def test_a_storm_of_malformed_messages_is_stored_with_reasons_and_good_ones_applied(
    fault_run: FaultRun, bad: int, orders: int
) -> None:
    good = order_walks(orders, 10, seed=52)
    storm = bad_messages(bad)
    fault_run.start()
    chunks = 10
    began = time.monotonic()
    for chunk in range(chunks):
        fault_run.producer.send(good[chunk::chunks])
        fault_run.producer.send_raw([message for _, message in storm[chunk::chunks]])
    fault_run.finish(drain_timeout=600)
    fault_run.figures.update(malformed=bad, seconds=round(time.monotonic() - began, 1))
    with psycopg.connect(fault_run.settings.database_url) as db:
        stored = {
            message_id: (reason, count)
            for message_id, reason, count in db.execute(
                "SELECT message_id, min(reason), count(*) FROM dead_letters GROUP BY message_id"
            )
        }
    expected = {message.message_id: (reason, 1) for reason, message in storm}
    assert stored == expected
