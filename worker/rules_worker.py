"""The rules worker: run the automation rules on order events, and on stays found by a scan.

Its handler decodes each event of a batch, judges every rule with its trigger
(worker.rules.engine) and records the verdicts with their effects in one
transaction per event (worker.db.rules_store): commands, notifications and
TaskCreated events go to the outbox, which the relay publishes. The kernel
acks the batch only after those commits. Between batches the worker looks for
orders that have stayed in a status long enough for a time-based rule
(worker.rules.stay_scan).
"""

import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime

from contracts import OrderCreated, OrderStatusChanged
from worker.config import Settings
from worker.crashpoints import RULES_AFTER_COMMIT_BEFORE_ACK
from worker.db.connection import Database
from worker.db.rules_store import DatabaseRulesStore
from worker.db.workflow_store import WorkflowCache
from worker.kernel.attempts import AttemptRunner
from worker.kernel.consumer import Consumer
from worker.kernel.delivery import Delivery
from worker.kernel.dispositions import DeadLetterReason, Disposition, Done, Poison, RetryLater
from worker.kernel.ports import Keepalive
from worker.messaging.event_decoding import Ignored, decode_event
from worker.messaging.topology import RULE_TRIGGER_EVENTS
from worker.rules.engine import Verdict, judge
from worker.rules.facts import TriggerEvent, from_order_created, from_status_changed
from worker.rules.loading import RuleSet, check_statuses, load_rules
from worker.rules.stay_scan import StayScan, log_verdicts
from worker.wiring import WorkerParts

log = logging.getLogger(__name__)

ROLE = "rules"
PREFETCH = 100
TAKE_WHAT_HAS_ARRIVED_SECONDS = 0.001


class JudgeRules:
    """The rules worker's handler: each event judged and recorded in its own transaction."""

    def __init__(
        self,
        settings: Settings,
        rules: RuleSet,
        store: DatabaseRulesStore,
        attempts: AttemptRunner,
        scan: StayScan,
    ) -> None:
        self._settings = settings
        self._rules = rules
        self._store = store
        self._attempts = attempts
        self._scan = scan

    def prepare(self) -> None:
        check_statuses(self._rules, self._store.workflow(), self._settings.rules_file)

    def handle(self, batch: Sequence[Delivery], keepalive: Keepalive) -> list[Disposition]:
        return [self._handle_one(delivery, keepalive) for delivery in batch]

    def _handle_one(self, delivery: Delivery, keepalive: Keepalive) -> Disposition:
        decoded = decode_event(delivery.envelope(), RULE_TRIGGER_EVENTS)
        match decoded:
            case Poison():
                return decoded
            case Ignored():
                log.debug("event ignored", extra={"type": decoded.type_name})
                return Done()
            case OrderCreated():
                event = from_order_created(decoded)
            case OrderStatusChanged():
                event = from_status_changed(decoded)
        [result] = self._attempts.run(
            [event],
            self._judge_and_record,
            key=lambda e: e.order_number,
            keepalive=keepalive,
            culprit=_dead_letter_reason,
        )
        if isinstance(result, Poison | RetryLater):
            return result
        assert isinstance(result, list)  # noqa: S101 - the verdicts; nothing is held back alone
        log_verdicts(event, result)
        return Done(result)

    def _judge_and_record(self, events: Sequence[TriggerEvent]) -> list[list[Verdict]]:
        [event] = events
        now = datetime.now(UTC)
        try:
            verdicts = judge(self._rules, event, self._settings.rules_max_depth, now)
        except Exception as error:  # a bug in judging costs this event, not the worker
            raise JudgingFailed(f"judging failed: {type(error).__name__}: {error}") from error
        self._store.record(event, verdicts, now)
        return [verdicts]

    def between_batches(self, keepalive: Keepalive) -> None:
        self._scan.run_if_due(keepalive)

    def close(self) -> None:
        self._store.close()


class JudgingFailed(Exception):
    """A rule could not be judged for an event (a bug, most likely): the event is dead-lettered."""


def _dead_letter_reason(_event: TriggerEvent, error: Exception) -> Poison:
    detail = str(error) if isinstance(error, JudgingFailed) else f"{type(error).__name__}: {error}"
    return Poison(DeadLetterReason.APPLY_FAILED, detail)


def build(
    settings: Settings,
    stop: threading.Event,
    rules: RuleSet | None = None,
) -> Consumer:
    """The rules worker, wired; an invalid rules file stops it here, before it starts."""
    parts = WorkerParts.of(ROLE, settings, stop)
    rule_set = rules if rules is not None else load_rules(settings.rules_file)
    log.info("rules loaded", extra={"rules_file": str(settings.rules_file)})
    store = DatabaseRulesStore(
        Database(settings, ROLE), WorkflowCache(settings.workflow_refresh_seconds)
    )
    attempts = parts.attempts()
    scan = StayScan(
        rule_set,
        every_seconds=settings.rules_scan_seconds,
        max_depth=settings.rules_max_depth,
        store=store,
        attempts=attempts,
        stopping=parts.stopping,
    )
    return parts.consumer(
        JudgeRules(settings, rule_set, store, attempts, scan),
        [parts.topology.rules()],
        batch_size=PREFETCH,
        batch_wait_seconds=TAKE_WHAT_HAS_ARRIVED_SECONDS,
        prefetch=PREFETCH,
        crash_before_ack=RULES_AFTER_COMMIT_BEFORE_ACK,
    )
