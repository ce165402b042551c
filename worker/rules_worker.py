"""The rules worker: run the automation rules on order events, and on stays found by a scan.

Per event from the `{ns}.rules` queue: decode it, judge every rule with its
trigger (worker.rules.engine), and record the verdicts with their effects in
one transaction (worker.db.rules_store): commands, notifications and
TaskCreated events go to the outbox, which the relay publishes. Only then is
the message acked. Every `rules_scan_seconds` the worker also looks for orders
that have stayed in a status long enough for a time-based rule.
"""

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import kombu

from contracts import OrderCreated, OrderStatusChanged
from worker.config import Settings
from worker.crashpoints import RULES_AFTER_COMMIT_BEFORE_ACK, crash_point
from worker.db.connection import Database
from worker.db.errors import ContentionPersists, is_contention, is_transient_database_error
from worker.db.rules_store import find_stays, record_verdicts
from worker.db.workflow_store import WorkflowCache
from worker.messaging.broker import (
    IDLE_POLL_SECONDS,
    MIN_READ_SECONDS,
    connect_declared,
    envelope_of,
    serve,
)
from worker.messaging.event_decoding import Ignored, decode_event
from worker.messaging.failure_policy import FailurePolicy, RouteFailures
from worker.messaging.poison import DeadLetterReason, Poison
from worker.messaging.publisher import ConfirmedPublisher
from worker.messaging.retry import RetryLater
from worker.messaging.topology import RULE_TRIGGER_EVENTS, Topology
from worker.resilience import retry_until_stopped, run_sessions
from worker.rules.engine import Verdict, judge, judge_rule, stay_id
from worker.rules.facts import (
    Stay,
    TriggerEvent,
    from_order_created,
    from_status_changed,
    from_stay,
)
from worker.rules.loading import CompiledRule, RuleSet, check_statuses, load_rules
from worker.rules.spec import StayedInStatusTrigger

log = logging.getLogger(__name__)

PREFETCH = 100
SCAN_BATCH = 200


Keyset = tuple[datetime, str] | None
"""Where the next page of stays begins: the last stay's entered_at and order number."""


class UnexpectedFailure(Exception):
    """Judging or recording failed in a way retrying will not cure (a bug, most likely)."""


class RulesWorker:
    """Runs the rules of `ORDERS_RULES_FILE` (or `rules`); refuses to start on an invalid file."""

    role = "rules"

    def __init__(
        self, settings: Settings, stop: threading.Event, rules: RuleSet | None = None
    ) -> None:
        self._settings = settings
        self._stop = stop
        self._topology = Topology.for_settings(settings)
        # Loaded here, before any thread starts: an invalid file stops start-up.
        self._rules = rules if rules is not None else load_rules(settings.rules_file)
        self._database = Database(settings, self.role)
        self._workflows = WorkflowCache(settings.workflow_refresh_seconds)
        self._next_scan = 0.0

    def run(self) -> None:
        """Consume and scan until `stop` is set, reconnecting after failures."""
        log.info(
            "rules worker starting",
            extra={
                "queue": self._topology.rules_queue,
                "rules_file": str(self._settings.rules_file),
                "rules": len(self._rules.rules),
                "disabled": len(self._rules.disabled),
            },
        )
        try:
            run_sessions(
                self._stop, self._consume_until_stopped, self._settings.reconnect_max_seconds, log
            )
        finally:
            self._database.close()
            log.info("rules worker stopped")

    def _connect(self) -> Any:
        workflow = self._workflows.current(self._database.connection())
        check_statuses(self._rules, workflow, self._settings.rules_file)
        return connect_declared(self._settings, self.role, self._topology)

    def _consume_until_stopped(self) -> None:
        connection = self._connect()
        try:
            channel = connection.channel()
            channel.auto_decode = False
            channel.basic_qos(0, PREFETCH, False)
            failures = RouteFailures(
                ConfirmedPublisher(connection), self._topology, self._topology.rules_queue
            )
            buffer: list[Any] = []
            consumer = kombu.Consumer(
                channel,
                queues=[self._topology.rules()],
                on_message=buffer.append,
                auto_declare=False,
                no_ack=False,
            )

            def keepalive() -> None:
                serve(connection)

            with consumer:
                log.info("consuming", extra={"queue": self._topology.rules_queue})
                while not self._stop.is_set():
                    self._scan_if_due(keepalive)
                    if not buffer:
                        try:
                            connection.drain_events(timeout=IDLE_POLL_SECONDS)
                        except TimeoutError:
                            connection.heartbeat_check()
                    _take_what_has_arrived(connection, buffer)
                    handled = None
                    while buffer and not self._stop.is_set():
                        handled = buffer.pop(0)
                        self._handle(handled, failures, keepalive)
                    if handled is not None:
                        # Each event's effects are committed already: one ack covers them.
                        crash_point(RULES_AFTER_COMMIT_BEFORE_ACK)
                        handled.ack(multiple=True)
        finally:
            connection.release()

    def _handle(self, message: Any, failures: FailurePolicy, keepalive: Callable[[], None]) -> None:
        """Judge and record one event; what fails goes through `failures`. The caller acks."""
        context = {
            "message_id": message.properties.get("message_id"),
            "correlation_id": message.properties.get("correlation_id"),
        }
        decoded = decode_event(envelope_of(message), RULE_TRIGGER_EVENTS)
        outcome: Poison | RetryLater | None = None
        match decoded:
            case Poison():
                outcome = decoded
            case Ignored():
                log.debug("event ignored", extra={**context, "type": decoded.type_name})
            case OrderCreated():
                outcome = self._judge_and_record(from_order_created(decoded), keepalive)
            case OrderStatusChanged():
                outcome = self._judge_and_record(from_status_changed(decoded), keepalive)
        if isinstance(outcome, Poison):
            failures.handle_poison(message, outcome)  # which logs it with its reason
        elif isinstance(outcome, RetryLater):
            failures.retry_later(message, outcome)

    def _judge_and_record(
        self, event: TriggerEvent, keepalive: Callable[[], None]
    ) -> Poison | RetryLater | None:
        """Record the verdicts; an outage is waited out here, contention only for a while.

        Contention that outlasts `contention_retries` sends the event to the
        rules queue's retry tiers, so one locked row does not hold up the queue.
        """
        contention_left = self._settings.contention_retries

        def attempt() -> list[Verdict]:
            nonlocal contention_left
            now = datetime.now(UTC)
            verdicts = self._judge(event, now)
            try:
                self._record(event, verdicts, now)
            except Exception as error:
                if is_contention(error):
                    if contention_left <= 0:
                        raise ContentionPersists(error) from error
                    contention_left -= 1
                raise
            return verdicts

        try:
            verdicts = self._retrying(keepalive)(attempt)
        except ContentionPersists as persisting:
            error = persisting.error
            return RetryLater(type(error).__name__, str(error).strip())
        except UnexpectedFailure as failure:
            log.error(
                "event cannot be processed",
                exc_info=failure.__cause__,
                extra={"event_id": str(event.event_id), "correlation_id": event.correlation_id},
            )
            return Poison(DeadLetterReason.APPLY_FAILED, str(failure))
        _log_verdicts(event, verdicts)
        return None

    def _judge(self, event: TriggerEvent, now: datetime) -> list[Verdict]:
        """Judge `event`; an error here is a bug, and costs this event, not the worker."""
        try:
            return judge(self._rules, event, self._settings.rules_max_depth, now)
        except Exception as error:
            raise UnexpectedFailure(f"judging failed: {type(error).__name__}: {error}") from error

    def _record(self, event: TriggerEvent, verdicts: list[Verdict], now: datetime) -> None:
        """Record in one transaction; database faults of the surroundings are retried."""
        try:
            connection = self._database.connection()
            workflow = self._workflows.current(connection)
            record_verdicts(connection, event, verdicts, workflow, now)
        except Exception as error:
            if is_transient_database_error(error):
                self._database.close()
                raise
            raise UnexpectedFailure(f"{type(error).__name__}: {error}") from error

    def _find_stays(
        self, rule_name: str, status: str, entered_before: datetime, after: Keyset
    ) -> list[Stay]:
        try:
            return find_stays(
                self._database.connection(),
                rule_name,
                status,
                entered_before,
                SCAN_BATCH,
                after=after,
            )
        except Exception as error:
            if is_transient_database_error(error):
                self._database.close()
            raise

    def _retrying(self, keepalive: Callable[[], None]) -> Any:
        return retry_until_stopped(
            self._stop,
            is_transient_database_error,
            self._settings.reconnect_max_seconds,
            log,
            keepalive=keepalive,
        )

    def _scan_if_due(self, keepalive: Callable[[], None]) -> None:
        """Fire time-based rules for orders that have stayed long enough, once per stay."""
        if time.monotonic() < self._next_scan:
            return
        self._next_scan = time.monotonic() + self._settings.rules_scan_seconds
        for rule in self._rules.time_rules():
            self._scan_rule(rule, keepalive)

    def _scan_rule(self, rule: CompiledRule, keepalive: Callable[[], None]) -> None:
        """Judge every stay `rule` has not fired on yet, a page at a time, oldest first."""
        trigger = rule.spec.trigger
        assert isinstance(trigger, StayedInStatusTrigger)  # noqa: S101 - time_rules() says so
        # Fixed for the whole scan, so paging through the stays ends.
        entered_before = datetime.now(UTC) - trigger.duration
        after: Keyset = None
        while not self._stop.is_set():
            stays = self._retrying(keepalive)(
                self._find_stays, rule.name, trigger.stayed_in, entered_before, after
            )
            for stay in stays:
                self._judge_stay(rule, stay, keepalive)
            if len(stays) < SCAN_BATCH:
                return
            after = (stays[-1].entered_at, stays[-1].order_number)
            keepalive()  # a long scan must not miss the broker's heartbeats

    def _judge_stay(self, rule: CompiledRule, stay: Stay, keepalive: Callable[[], None]) -> None:
        """Judge and record one stay; a stay that fails is recorded as failed, or skipped."""
        now = datetime.now(UTC)
        event = from_stay(stay, stay_id(stay.order_number, stay.version), now)
        try:
            verdict = judge_rule(rule, event, self._settings.rules_max_depth, now)
        except Exception as error:
            log.exception("time-based rule cannot be judged", extra=_stay_context(rule, event))
            why = f"judging failed: {type(error).__name__}: {error}"
            verdict = Verdict(rule, "failed", why, "rule_error")
        try:
            self._retrying(keepalive)(self._record, event, [verdict], now)
        except UnexpectedFailure as failure:
            log.exception("time-based rule cannot be recorded", extra=_stay_context(rule, event))
            verdict = Verdict(rule, "failed", f"recording failed: {failure}", "record_failed")
            try:
                self._retrying(keepalive)(self._record, event, [verdict], now)
            except UnexpectedFailure:
                # Not even the failure can be recorded: skip this stay, so the
                # others are not held up; the next scan tries it again.
                log.exception("stay skipped until the next scan", extra=_stay_context(rule, event))
                return
        _log_verdicts(event, [verdict])


def _stay_context(rule: CompiledRule, event: TriggerEvent) -> dict[str, Any]:
    return {
        "rule": rule.name,
        "event_id": str(event.event_id),
        "order_number": event.order_number,
        "correlation_id": event.correlation_id,
    }


def _take_what_has_arrived(connection: Any, buffer: list[Any]) -> None:
    """Read the deliveries already on the wire, so one ack can cover all of them."""
    while buffer and len(buffer) < PREFETCH:
        try:
            connection.drain_events(timeout=MIN_READ_SECONDS)
        except TimeoutError:
            return


def _log_verdicts(event: TriggerEvent, verdicts: list[Verdict]) -> None:
    for verdict in verdicts:
        if verdict.outcome == "not_matched":
            continue
        log.log(
            logging.INFO if verdict.outcome == "fired" else logging.WARNING,
            "rule %s",
            verdict.outcome,
            extra={
                "rule": verdict.rule.name,
                "event_id": str(event.event_id),
                "trigger": event.kind,
                "order_number": event.order_number,
                "correlation_id": event.correlation_id,
                "reason": verdict.reason,
                "actions": len(verdict.actions),
            },
        )
