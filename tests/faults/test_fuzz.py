"""Fuzzing what producers may send: each message ends as an outcome or a dead-letter entry
with a reason, and no worker stops or loses its channel.

Bodies, properties and headers are generated: wrong types, huge strings, deep
nesting, invalid UTF-8, odd content types, NaN and infinite doubles. They are
published to the commands exchange (the status worker) and straight to the
rules queue (the rules worker). What the broker itself refuses at publish
(RabbitMQ 3.10 closes the publisher's connection with 541 INTERNAL_ERROR on
an infinite or NaN double header, and never enqueues the message) is counted
apart: no worker ever sees it.
"""

import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import uuid4

import amqp.exceptions
import hypothesis.strategies as st
import kombu.exceptions
import psycopg
import pytest
from hypothesis import HealthCheck, Phase, given, settings

from tests.conftest import NO_RULES
from tests.support.fault_run import FaultRun
from tests.support.processes import WorkerProcess, wait_until
from tests.support.producer import RawMessage
from worker.errors import Unavailable
from worker.messaging.publisher import PublishFailed

pytestmark = pytest.mark.timeout(900)

PUBLISH_REFUSALS = (
    OSError,
    amqp.exceptions.AMQPError,
    kombu.exceptions.KombuError,
    PublishFailed,
    Unavailable,  # the broker closed the publisher's connection (541 on odd headers)
    OverflowError,
    ValueError,
    TypeError,
)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=30,
)
command_fields = st.fixed_dictionaries(
    {},
    optional={
        "command_id": st.uuids().map(str) | json_scalars,
        "order_number": st.text(max_size=80) | json_scalars,
        "to_status": st.sampled_from(["pending", "completed", "nope", ""]) | json_scalars,
        "actor": st.text(max_size=30) | json_scalars,
        "expected_version": st.integers() | json_scalars,
        "customer": json_values,
        "amount": st.decimals(allow_nan=True, allow_infinity=True).map(str) | json_scalars,
        "schema_version": st.integers(-2, 3),
    },
)


def _deep(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda value: __import__("json").dumps(value).encode()),
    command_fields.map(lambda value: __import__("json").dumps(value).encode()),
    st.integers(1, 100_000).map(_deep),
    st.integers(10_000, 2_000_000).map(lambda n: b'{"order_number": "' + b"x" * n + b'"}'),
    st.binary(min_size=1, max_size=50).map(lambda raw: b'{"order_number": "\xff\xfe' + raw + b'"}'),
)
header_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=60)
    | st.binary(max_size=60)
    | st.integers(1_000, 60_000).map(lambda n: "h" * n),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
content_types = st.none() | st.sampled_from(
    ["application/json", "text/json", "application/json; charset=utf-8", "APPLICATION/JSON",
     "text/plain", "application/x-python-pickle", ""]
) | st.text(max_size=30)  # fmt: skip
type_names = st.none() | st.sampled_from(
    ["CreateOrder", "ChangeOrderStatus", "OrderCreated", "OrderStatusChanged", "Unknown"]
) | st.text(max_size=30)  # fmt: skip


@st.composite
def messages(draw: st.DrawFn, routing_keys: list[str]) -> RawMessage:
    return RawMessage(
        body=draw(bodies),
        routing_key=draw(st.sampled_from(routing_keys)),
        message_id=f"fuzz-{uuid4()}",
        content_type=draw(content_types),
        content_encoding=draw(st.none() | st.sampled_from(["utf-8", "gzip", "latin-1", ""])),
        type_name=draw(type_names),
        headers=draw(st.dictionaries(st.text(min_size=1, max_size=20), header_values, max_size=4)),
    )


def has_odd_double(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(has_odd_double(item) for item in value.values())
    if isinstance(value, list):
        return any(has_odd_double(item) for item in value)
    return False


class Fuzzing:
    """The running workers, and what became of every message published so far."""

    def __init__(self, run: FaultRun, rules: WorkerProcess) -> None:
        self.run = run
        self.rules = rules
        self.accepted: list[RawMessage] = []
        self.refused_at_publish: list[RawMessage] = []
        self.odd_doubles_refused = 0

    def publish(self, message: RawMessage, exchange: str | None = None) -> None:
        try:
            self.run.producer.send_raw([message], window=1, exchange=exchange)
        except PUBLISH_REFUSALS:
            self.refused_at_publish.append(message)
            self.odd_doubles_refused += has_odd_double(dict(message.headers or {}))
            return
        self.accepted.append(message)

    def unsettled(self, sent: list[RawMessage]) -> list[RawMessage]:
        """Those of `sent` the broker took that have neither an outcome nor a dead letter."""
        ids = [message.message_id for message in sent if message in self.accepted]
        with psycopg.connect(self.run.settings.database_url) as db:
            rows = db.execute(
                """SELECT sent.id FROM unnest(%(ids)s::text[]) AS sent(id)
                   WHERE NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.message_id = sent.id)
                     AND NOT EXISTS (SELECT 1 FROM processed_commands p
                                     WHERE p.message_id = sent.id)""",
                {"ids": ids},
            ).fetchall()
        missing = {row[0] for row in rows}
        return [message for message in sent if message.message_id in missing]

    def assert_every_worker_runs(self) -> None:
        for role, worker in [*self.run.workers.items(), ("rules", self.rules)]:
            assert worker.alive(), f"{role} stopped:\n{worker.log_tail()}"
            assert worker.starts == 1
            log = worker.log_text()
            assert "reconnecting" not in log, f"{role} lost its connection:\n{worker.log_tail()}"


@pytest.fixture
def fuzzing(fault_run: FaultRun, tmp_path: Path) -> Iterator[Fuzzing]:
    fault_run.producer.confirm_timeout = 10
    fault_run.start()
    rules = WorkerProcess(
        fault_run.settings.model_copy(update={"rules_file": NO_RULES}), "rules", tmp_path
    )
    rules.start()
    fuzzing = Fuzzing(fault_run, rules)
    try:
        yield fuzzing
    finally:
        assert rules.stop() == 0, rules.log_tail()
    fault_run.figures.update(
        fuzzed=len(fuzzing.accepted) + len(fuzzing.refused_at_publish),
        refused_at_publish=len(fuzzing.refused_at_publish),
        of_which_nan_or_inf_headers=fuzzing.odd_doubles_refused,
    )
    fault_run.finish()


def fuzz_once(fuzzing: Fuzzing, to_commands: list[RawMessage], to_rules: list[RawMessage]) -> None:
    rules_queue = fuzzing.run.topology.rules_queue
    to_rules = [replace(message, routing_key=rules_queue) for message in to_rules]
    for message in to_commands:
        fuzzing.publish(message)
    for message in to_rules:
        fuzzing.publish(message, exchange="")
    sent = [*to_commands, *to_rules]
    if not wait_until(lambda: not fuzzing.unsettled(sent), 30):
        logs = "\n".join(
            f"--- {role}:\n{worker.log_tail(15)}"
            for role, worker in [*fuzzing.run.workers.items(), ("rules", fuzzing.rules)]
        )
        stuck = [
            (m.message_id, m.routing_key, m.content_type, m.type_name, m.body[:80], len(m.body))
            for m in fuzzing.unsettled(sent)
        ]
        raise AssertionError(f"no outcome and no dead letter for {stuck}\n{logs}")
    fuzzing.assert_every_worker_runs()


COMMAND_KEYS = ["order.create", "order.status.change", "order.unknown"]
EVENT_KEYS = ["order.created", "order.status.changed"]
FUZZ_SETTINGS: dict[str, Any] = {
    "deadline": None,
    # Each example waits for the workers; shrinking a failure would take many minutes, and
    # the failure message lists the messages that did not settle.
    "phases": [Phase.explicit, Phase.reuse, Phase.generate],
    "database": None,
    "suppress_health_check": [
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
}


@settings(max_examples=4, **FUZZ_SETTINGS)
@given(
    to_commands=st.lists(messages(COMMAND_KEYS), min_size=1, max_size=8),
    to_rules=st.lists(messages(EVENT_KEYS), max_size=4),
)
def test_fuzzed_messages_end_as_outcomes_or_dead_letters_quick(
    fuzzing: Fuzzing, to_commands: list[RawMessage], to_rules: list[RawMessage]
) -> None:
    fuzz_once(fuzzing, to_commands, to_rules)


@pytest.mark.faults
@settings(max_examples=40, **FUZZ_SETTINGS)
@given(
    to_commands=st.lists(messages(COMMAND_KEYS), min_size=1, max_size=25),
    to_rules=st.lists(messages(EVENT_KEYS), max_size=10),
)
def test_fuzzed_messages_end_as_outcomes_or_dead_letters(
    fuzzing: Fuzzing, to_commands: list[RawMessage], to_rules: list[RawMessage]
) -> None:
    fuzz_once(fuzzing, to_commands, to_rules)
