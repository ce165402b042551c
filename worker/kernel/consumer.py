"""The consumer skeleton every consuming worker runs on.

Per session: connect and declare, consume the handler's queues with a
prefetch, and loop: collect a batch (full, or a short wait after its first
delivery), hand it to the handler, route what the handler could not take
(poison to the dead letters, passing failures to a retry tier, held-back
deliveries behind the one they follow), wait for every confirm, and only then
ack the whole batch with one multiple ack. A crash anywhere before that ack
delivers the batch again, and the handlers' idempotence (the inbox, the
firings' keys, the dead-letter fingerprints) makes the second time change
nothing. Sessions start again after a lost connection (`sessions`); a stop
request finishes the batch in hand and exits (`stopping`).
"""

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from worker.crashpoints import crash_point
from worker.kernel.delivery import Delivery
from worker.kernel.dispositions import Disposition, HeldBack, Poison, RetryLater
from worker.kernel.hooks import Hooks
from worker.kernel.patience import Patience
from worker.kernel.ports import Keepalive, Session
from worker.kernel.routing import FailureRouting, attempts_of
from worker.kernel.sessions import Ready, run_sessions
from worker.kernel.stopping import Stopping
from worker.messaging.topology import Topology

log = logging.getLogger(__name__)


class BatchHandler(Protocol):
    """What a worker supplies: its queues' work, one batch at a time."""

    def prepare(self) -> None:
        """Check what the work needs before a session consumes (the database, the schema)."""

    def handle(self, batch: Sequence[Delivery], keepalive: Keepalive) -> Sequence[Disposition]:
        """Handle `batch` and commit; return one disposition per delivery, in order."""

    def between_batches(self, keepalive: Keepalive) -> None:
        """Periodic work of the worker's own (a scan), run between batches and when idle."""

    def close(self) -> None:
        """Release what the handler holds (its database connection)."""


@dataclass(frozen=True)
class ConsumerSettings:
    """How one worker consumes: its queues and batches."""

    role: str
    queues: Sequence[Any]
    """As the topology declares them (the adapter knows what to do with them)."""
    batch_size: int
    batch_wait_seconds: float
    prefetch: int
    reconnect_max_seconds: float
    crash_before_ack: str | None = None
    """The crash point (`worker.crashpoints`) a fault test may arm after commit, before the ack."""
    crash_after_dead_letter_copy: str | None = None
    """The crash point for a batch whose poison was dead-lettered, confirmed, and not acked."""


class Consumer:
    """Runs a `BatchHandler` on the broker until stopped; the one place that acks."""

    def __init__(
        self,
        settings: ConsumerSettings,
        handler: BatchHandler,
        *,
        open_session: Callable[[], Session],
        topology: Topology,
        stopping: Stopping,
        patience: Patience,
        hooks: Hooks | None = None,
    ) -> None:
        self._settings = settings
        self._handler = handler
        self._open_session = open_session
        self._routing = FailureRouting(topology)
        self._topology = topology
        self._stopping = stopping
        self._patience = patience
        self._hooks = hooks or Hooks()

    def run(self) -> None:
        """Consume until a stop is requested, starting sessions again after failures."""
        role = self._settings.role
        log.info("%s starting", _name(role), extra={"worker": role})
        try:
            run_sessions(
                self._stopping,
                self._session,
                role=role,
                max_wait_seconds=self._settings.reconnect_max_seconds,
                patience=self._patience,
                hooks=self._hooks,
            )
        finally:
            self._handler.close()
            log.info("%s stopped", _name(role), extra={"worker": role})

    def _session(self, ready: Ready) -> None:
        role = self._settings.role
        self._handler.prepare()
        session = self._open_session()
        try:
            session.consume(self._settings.queues, self._settings.prefetch)
            ready()
            log.info(
                "%s consuming",
                _name(role),
                extra={"worker": role, "queues": [queue.name for queue in self._settings.queues]},
            )
            while not self._stopping.requested():
                batch = session.collect(
                    self._settings.batch_size,
                    self._settings.batch_wait_seconds,
                    self._stopping.requested,
                )
                if batch:
                    self.process(batch, session)
                if not self._stopping.requested():
                    self._handler.between_batches(session.serve)
            # Never cancelled, only closed: a quorum queue puts the deliveries in flight at a
            # basic.cancel behind later messages, so after a restart a later command of an
            # order would overtake an earlier one; closing returns every unacked one in place.
            self._hooks.readiness_changed(role, False, "stopping")
            self._hooks.session_stopped(role, None)
        finally:
            session.close()

    def process(self, batch: Sequence[Delivery], session: Session) -> list[Disposition]:
        """Handle one batch: commit, route failures, confirm, then ack it all at once."""
        role = self._settings.role
        began = time.monotonic()
        self._hooks.before_batch(role, batch)
        dispositions = list(self._handler.handle(batch, session.serve))
        if len(dispositions) != len(batch):
            raise RuntimeError(f"{role} returned {len(dispositions)} dispositions for {len(batch)}")
        publisher = session.publisher()
        for delivery, disposition in zip(batch, dispositions, strict=True):
            failure = self._failure_of(disposition)
            if failure is not None:
                destination = self._routing.route(publisher, delivery, failure)
                self._hooks.failure_routed(role, delivery, failure, destination)
        # Every effect is committed, and every copy in a tier or the dead letters confirmed:
        # only now may the originals go.
        publisher.confirm_all()
        self._crash_point_before_ack(dispositions)
        session.ack_through(batch[-1])
        self._hooks.after_batch(role, batch, dispositions, time.monotonic() - began)
        return dispositions

    def _crash_point_before_ack(self, dispositions: Sequence[Disposition]) -> None:
        poisoned = any(isinstance(disposition, Poison) for disposition in dispositions)
        name = self._settings.crash_before_ack
        if poisoned and self._settings.crash_after_dead_letter_copy:
            name = self._settings.crash_after_dead_letter_copy
        if name is not None:
            crash_point(name)

    def _failure_of(self, disposition: Disposition) -> Poison | RetryLater | None:
        if isinstance(disposition, HeldBack):
            # The same count as the one it follows, so the same tier or a later one, or the
            # dead letters with it; published after it, so it comes back after it.
            behind = attempts_of(disposition.behind, self._topology)
            return RetryLater("held_back", disposition.detail, behind)
        if isinstance(disposition, Poison | RetryLater):
            return disposition
        return None


def _name(role: str) -> str:
    """The role as a log line says it: `status worker`, `dead letter ingester`."""
    return role.replace("-", " ")
