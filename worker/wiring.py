"""Explicit wiring: the kernel's parts built from the settings, for each worker to assemble.

Each worker module is its handler plus a `build(settings, stop)` of a few lines
that calls these; nothing here connects until the worker runs.
"""

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from worker.config import Settings
from worker.kernel.attempts import AttemptRunner
from worker.kernel.consumer import BatchHandler, Consumer, ConsumerSettings
from worker.kernel.hooks import Hooks
from worker.kernel.patience import Patience
from worker.kernel.stopping import Stopping
from worker.messaging.amqp_session import AmqpSession
from worker.messaging.topology import Topology


@dataclass
class WorkerParts:
    """One worker's shared parts: settings, names, the stop request, its patience, hooks."""

    role: str
    settings: Settings
    topology: Topology
    stopping: Stopping
    patience: Patience
    hooks: Hooks

    @classmethod
    def of(
        cls, role: str, settings: Settings, stop: threading.Event, hooks: Hooks | None = None
    ) -> "WorkerParts":
        hooks = hooks or Hooks()
        return cls(
            role,
            settings,
            Topology.for_settings(settings),
            Stopping(stop, settings.stop_grace_seconds),
            Patience(role, settings.give_up_after_seconds, hooks),
            hooks,
        )

    def attempts(self) -> AttemptRunner:
        return AttemptRunner(
            self.stopping,
            self.patience,
            contention_retries=self.settings.contention_retries,
            max_wait_seconds=self.settings.reconnect_max_seconds,
        )

    def consumer(
        self,
        handler: BatchHandler,
        queues: Sequence[Any],
        *,
        batch_size: int,
        batch_wait_seconds: float,
        prefetch: int,
        crash_before_ack: str | None = None,
        crash_after_dead_letter_copy: str | None = None,
    ) -> Consumer:
        return Consumer(
            ConsumerSettings(
                role=self.role,
                queues=queues,
                batch_size=batch_size,
                batch_wait_seconds=batch_wait_seconds,
                prefetch=prefetch,
                reconnect_max_seconds=self.settings.reconnect_max_seconds,
                crash_before_ack=crash_before_ack,
                crash_after_dead_letter_copy=crash_after_dead_letter_copy,
            ),
            handler,
            open_session=lambda: AmqpSession(self.settings, self.role, self.topology),
            topology=self.topology,
            stopping=self.stopping,
            patience=self.patience,
            hooks=self.hooks,
        )
