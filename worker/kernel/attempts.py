"""One attempt runner for a handler's database work, with the same dispositions for all workers.

- Unavailable (a server is down or restarting): retried in place, holding the
  batch, with capped backoff, for as long as it takes (and through a stop's
  grace period): an outage must neither use up a queue's delivery limit nor
  dead-letter valid work.
- Contention (lock timeout, deadlock, serialization failure): retried in place
  a few times; then the items are tried one at a time, and those that still
  meet it wait in a retry tier. An item whose key (its order) has an earlier
  item waiting is held back behind it, so per-key order holds.
- Misconfigured: not retried here; it ends the session (see `sessions`).
- Anything else: the batch is split to isolate the culprit, and the culprit
  alone becomes poison (`apply_failed`), unless the handler says otherwise.
"""

import logging
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

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
from worker.kernel.ports import Keepalive
from worker.kernel.stopping import Stopped, Stopping

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


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


def _default_culprit(_item: object, error: Exception) -> Poison:
    detail = (
        str(error) if isinstance(error, OrderStatusError) else f"{type(error).__name__}: {error}"
    )
    return Poison(DeadLetterReason.APPLY_FAILED, detail)


class AttemptRunner:
    """Runs a handler's work on a batch, sorting its failures into the kernel's dispositions."""

    def __init__(
        self,
        stopping: Stopping,
        *,
        contention_retries: int,
        max_wait_seconds: float,
        role: str,
    ) -> None:
        self._stopping = stopping
        self._contention_retries = contention_retries
        self._max_wait = max_wait_seconds
        self._role = role

    def run(
        self,
        items: Sequence[Item],
        work: Callable[[Sequence[Item]], Sequence[Result]],
        *,
        key: Callable[[Item], str],
        keepalive: Keepalive,
        culprit: Callable[[Item, Exception], Result | Poison] = _default_culprit,
    ) -> list[Result | Outcome]:
        """Return one entry per item, in order: `work`'s result for it, or what became of it."""
        attempt = _Attempt(
            self,
            work,
            key=key,
            keepalive=keepalive,
            culprit=culprit,
            contention_retries=self._contention_retries,
        )
        return attempt.run(items, self._contention_retries)

    def until_available(
        self,
        work: Callable[[Sequence[Item]], Sequence[Result]],
        items: Sequence[Item],
        keepalive: Keepalive,
        contention_retries: int = 0,
    ) -> Sequence[Result]:
        """Run `work`, waiting out Unavailable; retry Contention `contention_retries` times."""
        contention_left = contention_retries

        def attempt() -> Sequence[Result]:
            nonlocal contention_left
            try:
                return work(items)
            except Contention as error:
                if contention_left <= 0:
                    raise _ContentionPersists(error) from error
                contention_left -= 1
                raise

        try:
            return self.retrying(keepalive, size=len(items), also=(Contention,))(attempt)
        except _ContentionPersists as persisting:
            raise persisting.error from persisting.error.__cause__

    def retrying(
        self,
        keepalive: Keepalive | None,
        *,
        size: int = 0,
        also: tuple[type[Exception], ...] = (),
        only_if: Callable[[BaseException], bool] | None = None,
    ) -> Retrying:
        """Retry Unavailable (and `also`) with capped backoff until it clears or the grace ends.

        `only_if`, when given, replaces that choice: retry exactly what it accepts.
        """
        retryable: tuple[type[Exception], ...] = (Unavailable, *also)
        return Retrying(
            retry=retry_if_exception(only_if or (lambda error: isinstance(error, retryable))),
            wait=wait_exponential_jitter(multiplier=0.1, max=self._max_wait, jitter=0.2),
            sleep=lambda seconds: self._stopping.wait(seconds, keepalive),
            before_sleep=lambda state: self._say_waiting(state, size),
            reraise=True,
        )

    def _say_waiting(self, state: RetryCallState, size: int) -> None:
        error = state.outcome.exception() if state.outcome else None
        seconds = state.upcoming_sleep
        holding = f"; holding {size} messages" if size else ""
        if isinstance(error, Contention):
            log.info("rows are busy (%s); trying again in %.1fs%s", error, seconds, holding)
            return
        log.warning(
            "%s; trying again in %.1fs%s",
            error,
            seconds,
            holding,
            extra={"worker": self._role, "attempt": state.attempt_number},
        )


class _Attempt(Generic[Item, Result]):
    """One batch's way through the runner: the work, and what to do with its failures."""

    def __init__(
        self,
        runner: AttemptRunner,
        work: Callable[[Sequence[Item]], Sequence[Result]],
        *,
        key: Callable[[Item], str],
        keepalive: Keepalive,
        culprit: Callable[[Item, Exception], Result | Poison],
        contention_retries: int,
    ) -> None:
        self._contention_retries = contention_retries
        self._runner = runner
        self._work = work
        self._key = key
        self._keepalive = keepalive
        self._culprit = culprit

    def run(self, items: Sequence[Item], contention_retries: int) -> list[Result | Outcome]:
        if not items:
            return []
        try:
            return list(
                self._runner.until_available(self._work, items, self._keepalive, contention_retries)
            )
        except Contention as error:
            return self._one_at_a_time(items, error)
        except (Misconfigured, Unavailable, Stopped):
            raise
        except Exception as error:
            return self._isolate(items, error)

    def _one_at_a_time(self, items: Sequence[Item], error: Contention) -> list[Result | Outcome]:
        """Try each item alone; what still meets contention waits, and its key's later items too."""
        if len(items) == 1:
            return [RetryLater(error.kind, str(error).strip())]
        log.warning(
            "batch keeps meeting busy rows; applying its items one at a time",
            extra={"size": len(items), "error": str(error)},
        )
        waiting: dict[str, Item] = {}
        results: list[Result | Outcome] = []
        for item in items:
            item_key = self._key(item)
            if item_key in waiting:
                detail = f"an earlier message for {item_key} waits too"
                results.append(HeldBackItem(waiting[item_key], detail))
                continue
            [result] = self.run([item], contention_retries=0)
            if isinstance(result, RetryLater):
                waiting[item_key] = item
            results.append(result)
        return results

    def _isolate(self, items: Sequence[Item], error: Exception) -> list[Result | Outcome]:
        """Run each item alone, so only the one that fails by itself pays for it."""
        if len(items) > 1:
            log.warning(
                "batch failed; applying its items one at a time",
                extra={"size": len(items), "error": repr(error)},
            )
            return [
                result for item in items for result in self.run([item], self._contention_retries)
            ]
        [item] = items
        log.error("message cannot be handled: %s", error, exc_info=error)
        return [self._culprit(item, error)]


class _ContentionPersists(Exception):
    """Contention outlasted the in-place retries; `error` is the last one."""

    def __init__(self, error: Contention) -> None:
        super().__init__(str(error))
        self.error = error
