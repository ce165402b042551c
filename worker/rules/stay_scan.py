"""Time-based rules: find the orders that have stayed in a status long enough, and judge them.

Every `rules_scan_seconds` the rules worker pages through each time-based
rule's candidates (oldest stay first) and records one verdict per stay; a
stay's firing id comes from the order and the version it entered the status
at, so each stay fires once however often it is found. A stay whose verdict
cannot be recorded is recorded as failed, or skipped until the next scan, so
one bad stay never holds up the others.
"""

import logging
import time
from datetime import UTC, datetime
from typing import Any, Protocol

from worker.db.rules_store import STAYS_PAGE
from worker.errors import Contention, Misconfigured, Unavailable
from worker.kernel.attempts import AttemptRunner
from worker.kernel.patience import GaveUp
from worker.kernel.ports import Keepalive
from worker.kernel.stopping import Stopped, Stopping
from worker.rules.engine import Verdict, judge_rule, stay_id
from worker.rules.facts import Stay, TriggerEvent, from_stay
from worker.rules.loading import CompiledRule, RuleSet
from worker.rules.spec import StayedInStatusTrigger

log = logging.getLogger(__name__)

Keyset = tuple[datetime, str] | None
"""Where the next page of stays begins: the last stay's entered_at and order number."""


class StayStore(Protocol):
    """Where stays are found and verdicts recorded (`worker.db.rules_store.DatabaseRulesStore`)."""

    def find_stays(
        self, rule: str, status: str, entered_before: datetime, after: Keyset
    ) -> list[Stay]: ...

    def record(self, event: TriggerEvent, verdicts: list[Verdict], now: datetime) -> None: ...


class StayScan:
    """Fires time-based rules for orders that have stayed long enough, once per stay."""

    def __init__(
        self,
        rules: RuleSet,
        *,
        every_seconds: float,
        max_depth: int,
        store: StayStore,
        attempts: AttemptRunner,
        stopping: Stopping,
    ) -> None:
        self._rules = rules
        self._every = every_seconds
        self._max_depth = max_depth
        self._find_stays = store.find_stays
        self._record = store.record
        self._page = STAYS_PAGE
        self._attempts = attempts
        self._stopping = stopping
        self._next_scan = 0.0

    def run_if_due(self, keepalive: Keepalive) -> None:
        if time.monotonic() < self._next_scan:
            return
        self._next_scan = time.monotonic() + self._every
        for rule in self._rules.time_rules():
            self._scan_rule(rule, keepalive)

    def _scan_rule(self, rule: CompiledRule, keepalive: Keepalive) -> None:
        """Judge every stay `rule` has not fired on yet, a page at a time, oldest first."""
        trigger = rule.spec.trigger
        assert isinstance(trigger, StayedInStatusTrigger)  # noqa: S101 - time_rules() says so
        # Fixed for the whole scan, so paging through the stays ends.
        entered_before = datetime.now(UTC) - trigger.duration
        after: Keyset = None
        retrying = self._attempts.retrying(keepalive, only_if=_clears_in_place)
        while not self._stopping.requested():
            stays = retrying(self._find_stays, rule.name, trigger.stayed_in, entered_before, after)
            for stay in stays:
                self._judge_stay(rule, stay, keepalive)
            if len(stays) < self._page:
                return
            after = (stays[-1].entered_at, stays[-1].order_number)
            keepalive()  # a long scan must not miss the broker's heartbeats

    def _judge_stay(self, rule: CompiledRule, stay: Stay, keepalive: Keepalive) -> None:
        now = datetime.now(UTC)
        event = from_stay(stay, stay_id(stay.order_number, stay.version), now)
        try:
            verdict = judge_rule(rule, event, self._max_depth, now)
        except Exception as error:
            log.exception("time-based rule cannot be judged", extra=_context(rule, event))
            why = f"judging failed: {type(error).__name__}: {error}"
            verdict = Verdict(rule, "failed", why, "rule_error")
        retrying = self._attempts.retrying(keepalive, only_if=_clears_in_place)
        try:
            retrying(self._record, event, [verdict], now)
        except (Unavailable, Misconfigured, Stopped, GaveUp):
            raise
        except Exception as error:
            log.exception("time-based rule cannot be recorded", extra=_context(rule, event))
            failed = Verdict(rule, "failed", f"recording failed: {error}", "record_failed")
            try:
                retrying(self._record, event, [failed], now)
            except (Unavailable, Misconfigured, Stopped, GaveUp):
                raise
            except Exception:
                # Not even the failure can be recorded: skip this stay, so the
                # others are not held up; the next scan tries it again.
                log.exception("stay skipped until the next scan", extra=_context(rule, event))
                return
            verdict = failed
        log_verdicts(event, [verdict])


def _clears_in_place(error: BaseException) -> bool:
    """A stay has no message to send to a tier: busy rows are waited out like an outage."""
    return isinstance(error, Unavailable | Misconfigured | Contention)


def _context(rule: CompiledRule, event: TriggerEvent) -> dict[str, Any]:
    return {
        "rule": rule.name,
        "event_id": str(event.event_id),
        "order_number": event.order_number,
        "correlation_id": event.correlation_id,
    }


def log_verdicts(event: TriggerEvent, verdicts: list[Verdict]) -> None:
    """Log what fired, stopped or failed; a rule that did not match says nothing."""
    for verdict in verdicts:
        if verdict.outcome == "not_matched":
            continue
        log.log(
            logging.INFO if verdict.outcome == "fired" else logging.WARNING,
            "rule %s %s",
            verdict.rule.name,
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
