"""One attempt runner for a handler's database work, with the same dispositions for all workers.

- `Unavailable` (a server down or restarting): retried in place, holding the
  batch, with capped backoff, for as long as it takes (and through a stop's
  grace period): an outage must neither use up a queue's delivery limit nor
  dead-letter valid work.
- `Misconfigured` (a privilege missing, the schema gone): retried in place too,
  holding the batch, but said once and given up on after the worker's patience
  (`patience.GaveUp`): handing the batch back on every try would spend the
  queue's delivery limit on valid work.
- `Contention` (lock timeout, deadlock, serialization failure): retried in
  place `contention_retries` times; then the items are tried one at a time, and
  those that still meet it wait in a retry tier (`RetryLater`), unless the
  handler has no tier to send them to (`wait_out_contention`).
- Anything else (`Refused`, a bug): the items are tried one at a time, and the
  culprit alone becomes poison (`apply_failed`), or what the handler's
  `culprit` makes of it.

Whenever items are tried one at a time, a later item whose key (its order) has
an earlier item waiting in a tier is held back behind it, so per-key order holds.
"""

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential_jitter

from worker.errors import Contention, Misconfigured, OrderStatusError, Unavailable
from worker.kernel.delivery import Delivery
from worker.kernel.dispositions import (
    DeadLetterReason,
    Disposition,
    HeldBack,
    Poison,
    RetryLater,
)
from worker.kernel.patience import GaveUp, Patience
from worker.kernel.ports import Keepalive
from worker.kernel.stopping import Stopped, Stopping

log = logging.getLogger(__name__)

FIRST_WAIT_SECONDS = 0.1
"""The pause before the first retry in place; later ones grow to `max_wait_seconds`."""

Item = TypeVar("Item")
Result = TypeVar("Result")
Work = Callable[[Sequence[Item]], Sequence[Result]]


class HeldBackItem:
    """An item kept behind `behind`, an earlier item for the same key that waits in a tier."""

    def __init__(self, behind: object, detail: str) -> None:
        self.behind = behind
        self.detail = detail


Outcome = Poison | RetryLater | HeldBackItem
"""What became of an item the work could not take."""


def as_dispositions(
    results: Sequence[object],
    delivery_of: Callable[[object], Delivery],
    done: Callable[[object], Disposition],
) -> list[Disposition]:
    """Turn the runner's results into dispositions: `done` for work results, the rest as they are.

    A held-back item becomes a `HeldBack` behind the delivery of the item it follows.
    """
    dispositions: list[Disposition] = []
    for result in results:
        if isinstance(result, HeldBackItem):
            dispositions.append(HeldBack(delivery_of(result.behind), result.detail))
        elif isinstance(result, Poison | RetryLater):
            dispositions.append(result)
        else:
            dispositions.append(done(result))
    return dispositions


def apply_failed(_item: object, error: Exception) -> Poison:
    """The default culprit: poison, with what went wrong."""
    own = isinstance(error, OrderStatusError)
    detail = str(error) if own else f"{type(error).__name__}: {error}"
    return Poison(DeadLetterReason.APPLY_FAILED, detail)


class AttemptRunner:
    """Runs a handler's work on a batch, sorting its failures into the kernel's dispositions."""

    def __init__(
        self,
        stopping: Stopping,
        patience: Patience,
        *,
        contention_retries: int,
        max_wait_seconds: float,
    ) -> None:
        self._stopping = stopping
        self._patience = patience
        self._contention_retries = contention_retries
        self._max_wait = max_wait_seconds

    def run(
        self,
        items: Sequence[Item],
        work: Work[Item, Result],
        *,
        key: Callable[[Item], str],
        keepalive: Keepalive,
        culprit: Callable[[Item, Exception], Result | Poison] = apply_failed,
        wait_out_contention: bool = False,
    ) -> list[Result | Outcome]:
        """Return one entry per item, in order: `work`'s result for it, or what became of it."""
        if not items:
            return []
        patient = wait_out_contention
        try:
            return list(self.in_place(work, items, keepalive, contention_too=patient))
        except (Unavailable, Misconfigured, Stopped, GaveUp):
            raise
        except Contention as error:
            why: Exception = error
        except Exception as error:
            why = error
        if len(items) == 1:
            [item] = items
            return [self._alone(item, why, culprit)]
        log.warning(
            "batch failed (%s); trying its %d items one at a time",
            why,
            len(items),
            extra={"error": repr(why)},
        )
        waiting: dict[str, Item] = {}
        results: list[Result | Outcome] = []
        for item in items:
            item_key = key(item)
            if item_key in waiting:
                results.append(HeldBackItem(waiting[item_key], f"{item_key} waits in a tier"))
                continue
            [result] = self.run(
                [item],
                work,
                key=key,
                keepalive=keepalive,
                culprit=culprit,
                wait_out_contention=patient,
            )
            if isinstance(result, RetryLater):
                waiting[item_key] = item
            results.append(result)
        return results

    def _alone(
        self, item: Item, error: Exception, culprit: Callable[[Item, Exception], Result | Poison]
    ) -> Result | Outcome:
        if isinstance(error, Contention):
            return RetryLater(error.kind, str(error).strip())
        log.error("message cannot be handled: %s", error, exc_info=error)
        return culprit(item, error)

    def in_place(
        self,
        work: Work[Item, Result],
        items: Sequence[Item],
        keepalive: Keepalive,
        *,
        contention_too: bool = False,
    ) -> Sequence[Result]:
        """Run `work`, waiting out what clears in place; `Contention` `contention_retries` times.

        With `contention_too`, busy rows are waited out for as long as they last.
        """
        contention_left = self._contention_retries

        def clears_in_place(error: BaseException) -> bool:
            nonlocal contention_left
            if isinstance(error, Unavailable | Misconfigured):
                return True
            if not isinstance(error, Contention):
                return False
            contention_left -= 1
            return contention_too or contention_left >= 0

        try:  # the common case, without building a retry loop
            result = work(items)
        except Exception as error:
            if not clears_in_place(error):
                raise
            self._say_waiting(error, FIRST_WAIT_SECONDS, len(items), attempt=1)
            self._stopping.wait(FIRST_WAIT_SECONDS, keepalive)
            result = self.retrying(keepalive, size=len(items), only_if=clears_in_place)(work, items)
        self._patience.recovered()
        return result

    def retrying(
        self,
        keepalive: Keepalive | None,
        *,
        size: int = 0,
        only_if: Callable[[BaseException], bool] | None = None,
        through_grace: bool = True,
    ) -> Retrying:
        """Retry what `only_if` accepts (default: what clears by itself) with capped backoff.

        Holding work (`through_grace`), the waits go on through a stop's grace
        period; otherwise a stop ends them at once. A `Misconfigured` fault is
        judged by the worker's patience before each wait.
        """
        wanted = only_if or (lambda error: isinstance(error, Unavailable | Misconfigured))
        pause = self._stopping.wait if through_grace else self._stopping.pause
        return Retrying(
            retry=retry_if_exception(wanted),
            wait=wait_exponential_jitter(multiplier=0.1, max=self._max_wait, jitter=0.2),
            sleep=lambda seconds: pause(seconds, keepalive),
            before_sleep=lambda state: self._before_waiting(state, size),
            reraise=True,
        )

    def _before_waiting(self, state: RetryCallState, size: int) -> None:
        error = state.outcome.exception() if state.outcome else None
        self._say_waiting(error, state.upcoming_sleep, size, attempt=state.attempt_number + 1)

    def _say_waiting(
        self, error: BaseException | None, seconds: float, size: int, *, attempt: int
    ) -> None:
        if isinstance(error, Misconfigured):
            self._patience.judge(error)  # says it once; raises GaveUp when patience runs out
            return
        holding = f"; holding {size} messages" if size else ""
        log.warning(
            "%s; trying again in %.1fs%s",
            error,
            seconds,
            holding,
            extra={"attempt": attempt},
        )
