"""Fixtures of the fault suite: settings quick to react, a run that cleans up after itself,
and a summary of every scenario's counts at the end of the session."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fault_run import FaultRun
from worker.config import Settings
from worker.messaging.topology import Topology

REPORTS = pytest.StashKey[list[tuple[str, dict[str, Any]]]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[REPORTS] = []


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    reports = config.stash.get(REPORTS, [])
    if not reports:
        return
    terminalreporter.section("fault scenarios: history checker counts")
    for nodeid, counts in reports:
        shown = ", ".join(f"{name}={value}" for name, value in counts.items())
        terminalreporter.write_line(f"{nodeid.split('::')[-1]}: {shown}")


@pytest.fixture
def fault_settings(settings: Settings) -> Settings:
    """The test's settings, with workers that reconnect fast and log only what matters."""
    return settings.model_copy(
        update={"log_level": "WARNING", "reconnect_max_seconds": 0.5, "batch_wait_ms": 5}
    )


@pytest.fixture
def fault_run(
    fault_settings: Settings, topology: Topology, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[FaultRun]:
    run = FaultRun(fault_settings, topology, tmp_path)
    yield run
    run.close()
    if run.report is not None:
        request.config.stash[REPORTS].append((request.node.nodeid, run.summary()))
