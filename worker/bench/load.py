"""The load generator: publish planned messages with pika and pipelined confirms.

Runs in a process of its own (`python -m worker.bench.load ...`), so the
publisher does not share an interpreter with what it measures. It keeps up to
`window` messages unconfirmed, optionally paces itself to a rate, and records
when each command was first sent (time.monotonic, a clock every process on the
machine shares) for the latency figures.
"""

import json
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
from pika.spec import Basic

from worker.bench.workload import PlannedMessage

DEFAULT_WINDOW = 1000


@dataclass
class PublishReport:
    """What the broker said about a run of publishes, and when each command left."""

    sent_at: dict[str, float] = field(default_factory=dict)
    nacked: int = 0
    seconds: float = 0.0


class WindowedPublisher:
    """Publishes persistent messages, never more than `window` awaiting their confirm."""

    def __init__(
        self, amqp_url: str, exchange: str, messages: list[PlannedMessage], rate: float | None,
        window: int,
    ) -> None:  # fmt: skip
        self._exchange = exchange
        self._messages = messages
        self._rate = rate
        self._window = window
        self._unconfirmed: deque[int] = deque()
        self._position = 0
        self._started = 0.0
        self._paused = False
        self._channel: Any = None
        self.report = PublishReport()
        self._connection: Any = pika.SelectConnection(
            pika.URLParameters(amqp_url),
            on_open_callback=lambda connection: connection.channel(
                on_open_callback=self._on_channel
            ),
            on_open_error_callback=self._on_open_error,
            on_close_callback=lambda _connection, _reason: self._connection.ioloop.stop(),
        )

    def run(self) -> PublishReport:
        begun = time.monotonic()
        self._connection.ioloop.start()
        self.report.seconds = time.monotonic() - begun
        if self._position < len(self._messages) or self._unconfirmed:
            raise ConnectionError(
                f"the connection closed with {len(self._messages) - self._position} messages "
                f"unsent and {len(self._unconfirmed)} unconfirmed"
            )
        return self.report

    def _on_open_error(self, _connection: Any, error: BaseException) -> None:
        self._connection.ioloop.stop()
        raise ConnectionError(f"cannot reach RabbitMQ: {error!r}")

    def _on_channel(self, channel: Any) -> None:
        self._channel = channel
        self._started = time.monotonic()
        channel.confirm_delivery(self._on_confirm, callback=lambda _frame: self._pump())

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        if isinstance(method, Basic.Nack):
            self.report.nacked += 1
        if method.multiple:
            while self._unconfirmed and self._unconfirmed[0] <= method.delivery_tag:
                self._unconfirmed.popleft()
        elif method.delivery_tag in self._unconfirmed:
            self._unconfirmed.remove(method.delivery_tag)
        self._pump()

    def _resume(self) -> None:
        self._paused = False
        self._pump()

    def _pump(self) -> None:
        """Publish while the window has room and the rate allows; close when all is confirmed."""
        if self._paused:
            return
        while self._position < len(self._messages) and len(self._unconfirmed) < self._window:
            if self._rate is not None:
                due = self._started + self._position / self._rate
                wait = due - time.monotonic()
                if wait > 0:
                    self._paused = True
                    self._connection.ioloop.call_later(wait, self._resume)
                    return
            self._publish(self._messages[self._position])
        if self._position == len(self._messages) and not self._unconfirmed:
            self._connection.close()

    def _publish(self, message: PlannedMessage) -> None:
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=2,
            message_id=message.command_id,
            type=message.type_name,
        )
        self._channel.basic_publish(self._exchange, message.routing_key, message.body, properties)
        self.report.sent_at.setdefault(message.command_id, time.monotonic())
        self._position += 1
        self._unconfirmed.append(self._position)  # delivery tags count from 1


def publish(
    amqp_url: str,
    exchange: str,
    messages: list[PlannedMessage],
    *,
    rate: float | None = None,
    window: int = DEFAULT_WINDOW,
) -> PublishReport:
    """Publish every message and return once the broker has confirmed them all."""
    return WindowedPublisher(amqp_url, exchange, messages, rate, window).run()


def write_plan(path: Path, messages: list[PlannedMessage]) -> None:
    lines = (
        json.dumps([m.command_id, m.type_name, m.routing_key, m.body.decode()]) for m in messages
    )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_plan(path: Path) -> list[PlannedMessage]:
    messages = []
    for line in path.read_text(encoding="utf-8").splitlines():
        command_id, type_name, routing_key, body = json.loads(line)
        messages.append(PlannedMessage(command_id, type_name, routing_key, body.encode()))
    return messages


def main(argv: list[str]) -> int:
    """python -m worker.bench.load AMQP_URL EXCHANGE PLAN REPORT RATE (0: unpaced)"""
    amqp_url, exchange, plan, out, rate = argv
    report = publish(amqp_url, exchange, read_plan(Path(plan)), rate=float(rate) or None)
    Path(out).write_text(
        json.dumps({"sent_at": report.sent_at, "nacked": report.nacked, "seconds": report.seconds}),
        encoding="utf-8",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
