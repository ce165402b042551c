"""Run one or more workers in threads of one process until told to stop."""

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from worker.config import Settings
from worker.dead_letter_ingester import DeadLetterIngester
from worker.relay import OutboxRelay
from worker.rules_worker import RulesWorker
from worker.status_worker import StatusWorker

log = logging.getLogger(__name__)


class Worker(Protocol):
    def run(self) -> None: ...


WorkerFactory = Callable[[Settings, threading.Event], Worker]

WORKERS: dict[str, WorkerFactory] = {
    StatusWorker.role: StatusWorker,
    OutboxRelay.role: OutboxRelay,
    RulesWorker.role: RulesWorker,
    DeadLetterIngester.role: DeadLetterIngester,
}


def run_workers(settings: Settings, names: Sequence[str], stop: threading.Event) -> bool:
    """Run the named workers until `stop` is set; False if one of them failed.

    A worker that dies of an unexpected error stops the others, so the process
    exits and its supervisor (systemd, docker, k8s) restarts it cleanly.
    """
    failures: list[str] = []

    def guarded(name: str, worker: Worker) -> None:
        try:
            worker.run()
        except Exception:
            log.exception("worker failed; stopping the process", extra={"worker": name})
            failures.append(name)
        finally:
            stop.set()

    threads = [
        threading.Thread(
            target=guarded, args=(name, WORKERS[name](settings, stop)), name=name, daemon=True
        )
        for name in names
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=0.5)
    return not failures
