"""What RabbitMQ and PostgreSQL alone sustain here, measured in the benchmark's run.

The end-to-end figure means little on its own: the same code runs at very
different speeds on different machines. So each run also measures the raw
stages on this machine, at the same moment, and reports its result as a ratio:

- broker_publish: persistent publishes to a quorum queue, confirms pipelined
  (the load generator's own publisher, so this is its ceiling too);
- broker_consume: the same messages consumed with prefetch 1000, acked 200 at a time;
- database_apply: the apply step as one set-based statement per 500 commands
  (inbox claim, row lock, update, history row, outbox row), committed each batch.

The end-to-end path passes every command through the broker twice and the
database once, so the binding ceiling is the slowest of the three.
"""

import json
import time
import uuid
from dataclasses import dataclass

import pika
import psycopg

from worker.bench.load import publish
from worker.bench.workload import PlannedMessage

DATABASE_BATCH = 500


@dataclass(frozen=True)
class Ceiling:
    broker_publish: float
    broker_consume: float
    database_apply: float

    @property
    def binding(self) -> float:
        return min(self.broker_publish, self.broker_consume, self.database_apply)


def measure_ceiling(amqp_url: str, database_url: str, queue: str, count: int) -> Ceiling:
    publish_rate, consume_rate = _broker(amqp_url, queue, count)
    return Ceiling(publish_rate, consume_rate, _database(database_url, count))


def _broker(amqp_url: str, queue: str, count: int) -> tuple[float, float]:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    try:
        messages = [
            PlannedMessage(str(uuid.uuid4()), "ChangeOrderStatus", queue, _sample_body(i))
            for i in range(count)
        ]
        report = publish(amqp_url, "", messages)
        channel.basic_qos(prefetch_count=1000)
        received = 0
        started = time.monotonic()
        for method, _properties, _body in channel.consume(queue, inactivity_timeout=5):
            if method is None:
                break
            received += 1
            if received % 200 == 0 or received == count:
                channel.basic_ack(method.delivery_tag, multiple=True)
            if received == count:
                break
        consumed_in = time.monotonic() - started
        channel.cancel()
    finally:
        channel.queue_delete(queue)
        connection.close()
    return count / report.seconds, received / consumed_in


def _sample_body(i: int) -> bytes:
    return json.dumps(
        {
            "command_id": str(uuid.uuid4()),
            "order_number": f"CEIL-{i:08d}",
            "to_status": "in_progress",
            "actor": "bench",
            "reason": "benchmark",
        }
    ).encode()


CREATE_SCRATCH = """
CREATE TABLE ceiling_orders (order_number text PRIMARY KEY, status text NOT NULL,
                             version integer NOT NULL);
CREATE TABLE ceiling_inbox (command_id uuid PRIMARY KEY, outcome text NOT NULL,
                            processed_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE ceiling_history (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                              order_number text NOT NULL, from_status text,
                              to_status text NOT NULL, version integer NOT NULL,
                              changed_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE ceiling_outbox (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                             payload jsonb NOT NULL, published_at timestamptz);
"""

DROP_SCRATCH = "DROP TABLE IF EXISTS ceiling_orders, ceiling_inbox, ceiling_history, ceiling_outbox"

APPLY_SET_BASED = """
WITH batch AS (
    SELECT * FROM unnest(%(ids)s::uuid[], %(orders)s::text[], %(statuses)s::text[])
        AS b(command_id, order_number, to_status)
), claimed AS (
    INSERT INTO ceiling_inbox (command_id, outcome)
    SELECT command_id, 'applied' FROM batch
    ON CONFLICT DO NOTHING RETURNING command_id
), locked AS (
    SELECT o.order_number, o.status, o.version, b.to_status
    FROM ceiling_orders o JOIN batch b USING (order_number) JOIN claimed c USING (command_id)
    FOR UPDATE OF o
), moved AS (
    UPDATE ceiling_orders o SET status = l.to_status, version = l.version + 1
    FROM locked l WHERE o.order_number = l.order_number
    RETURNING o.order_number, l.status AS from_status, o.status AS to_status, o.version
), history AS (
    INSERT INTO ceiling_history (order_number, from_status, to_status, version)
    SELECT order_number, from_status, to_status, version FROM moved
)
INSERT INTO ceiling_outbox (payload)
SELECT jsonb_build_object('order_number', order_number, 'to_status', to_status) FROM moved
"""


def _database(database_url: str, count: int) -> float:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(DROP_SCRATCH)
        connection.execute(CREATE_SCRATCH)
        connection.execute(
            "INSERT INTO ceiling_orders SELECT 'CEIL-' || lpad(g::text, 8, '0'), 'pending', 1 "
            "FROM generate_series(0, %(last)s) AS g",
            {"last": count - 1},
        )
    try:
        with psycopg.connect(database_url) as connection:
            started = time.monotonic()
            for start in range(0, count, DATABASE_BATCH):
                numbers = range(start, min(count, start + DATABASE_BATCH))
                with connection.transaction():
                    connection.execute(
                        APPLY_SET_BASED,
                        {
                            "ids": [uuid.uuid4() for _ in numbers],
                            "orders": [f"CEIL-{i:08d}" for i in numbers],
                            "statuses": ["in_progress"] * len(numbers),
                        },
                    )
            elapsed = time.monotonic() - started
    finally:
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute(DROP_SCRATCH)
    return count / elapsed
