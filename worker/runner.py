"""Run one or more workers in threads of one process until told to stop."""

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from worker import dead_letter_ingester, rules_worker, status_worker
from worker.config import Settings
from worker.kernel.patience import GaveUp
from worker.relay import OutboxRelay

log = logging.getLogger(__name__)


class Worker(Protocol):
    def run(self) -> None: ...


WorkerFactory = Callable[[Settings, threading.Event], Worker]

WORKERS: dict[str, WorkerFactory] = {
    status_worker.ROLE: status_worker.build,
    OutboxRelay.role: OutboxRelay,
    rules_worker.ROLE: rules_worker.build,
    dead_letter_ingester.ROLE: dead_letter_ingester.build,
}


def run_workers(settings: Settings, names: Sequence[str], stop: threading.Event) -> bool:
    """Run the named workers until `stop` is set; False if one of them failed.

    A worker that dies of an unexpected error, or gives up on a fault that
    does not clear by itself, stops the others, so the process exits non-zero
    and its supervisor (systemd, docker, k8s) restarts it cleanly. Workers are
    built here, before any thread starts: an invalid rules file stops start-up.
    """
    failures: list[str] = []
    workers = {name: WORKERS[name](settings, stop) for name in names}

    def guarded(name: str, worker: Worker) -> None:
        try:
            worker.run()
        except GaveUp as gave_up:
            log.error("%s; stopping the process", gave_up, extra={"worker": name})
            failures.append(name)
        except Exception:
            log.exception("worker failed; stopping the process", extra={"worker": name})
            failures.append(name)
        finally:
            stop.set()

    threads = [
        threading.Thread(target=guarded, args=(name, worker), name=name, daemon=True)
        for name, worker in workers.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=0.5)
    return not failures
