"""Explicit wiring: the kernel's parts built from the settings, for each worker to assemble.

Each worker module is its handler plus a `build(settings, stop)` of a few lines
that calls these; nothing here connects until the worker runs.
"""

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.config import Settings
from worker.kernel.attempts import AttemptRunner
from worker.kernel.consumer import BatchHandler, Consumer, ConsumerSettings
from worker.kernel.hooks import Hooks
from worker.kernel.stopping import Stopping
from worker.messaging.amqp_session import AmqpSession
from worker.messaging.topology import Topology


@dataclass
class WorkerParts:
    """What every worker of one process shares: settings, names, the stop request, hooks."""

    settings: Settings
    topology: Topology
    stopping: Stopping
    hooks: Hooks = field(default_factory=Hooks)

    @classmethod
    def of(
        cls, settings: Settings, stop: threading.Event, hooks: Hooks | None = None
    ) -> "WorkerParts":
        return cls(
            settings,
            Topology.for_settings(settings),
            Stopping(stop, settings.stop_grace_seconds),
            hooks or Hooks(),
        )

    def attempts(self, role: str) -> AttemptRunner:
        return AttemptRunner(
            self.stopping,
            contention_retries=self.settings.contention_retries,
            max_wait_seconds=self.settings.reconnect_max_seconds,
            role=role,
        )

    def consumer(
        self,
        role: str,
        handler: BatchHandler,
        queues: Sequence[Any],
        *,
        batch_size: int,
        batch_wait_seconds: float,
        prefetch: int,
    ) -> Consumer:
        return Consumer(
            ConsumerSettings(
                role=role,
                queues=queues,
                batch_size=batch_size,
                batch_wait_seconds=batch_wait_seconds,
                prefetch=prefetch,
                reconnect_max_seconds=self.settings.reconnect_max_seconds,
                give_up_after_seconds=self.settings.give_up_after_seconds,
            ),
            handler,
            open_session=lambda: AmqpSession(self.settings, role, self.topology),
            topology=self.topology,
            stopping=self.stopping,
            hooks=self.hooks,
        )
