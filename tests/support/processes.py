"""Workers as the operator runs them: `order-status run ROLE`, one OS process each."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from worker.config import Settings

ROLES = ("status-worker", "relay", "dead-letter-ingester")
"""What a fault scenario runs: the command path, the events path, the dead-letter path."""


def settings_environment(settings: Settings) -> dict[str, str]:
    """The environment that gives a worker process exactly these settings."""
    return {
        f"ORDERS_{name.upper()}": str(value)
        for name, value in settings.model_dump().items()
        if value is not None
    }


class WorkerProcess:
    """One `order-status run ROLE` process, its log in a file, started again on demand."""

    def __init__(self, settings: Settings, role: str, log_dir: Path) -> None:
        self.settings = settings
        self.role = role
        self.log_path = log_dir / f"{role}.log"
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, crash_at: str | None = None, **overrides: str) -> "WorkerProcess":
        env = {**os.environ, **settings_environment(self.settings), **overrides}
        env.pop("ORDERS_CRASH_AT", None)
        if crash_at:
            env["ORDERS_CRASH_AT"] = crash_at
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts + 1} crash_at={crash_at}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                [sys.executable, "-m", "worker", "run", self.role],
                env=env,
                stdout=log,
                stderr=log,
            )
        self.starts += 1
        return self

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self._process is not None, f"{self.role} was never started"
        return self._process

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not stopped within `timeout`; the exit status."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                return self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        return self._process.returncode

    def peak_rss_mb(self) -> float:
        """VmHWM of the running process (Linux): its resident high-water mark, in MB."""
        for line in Path(f"/proc/{self.pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise AssertionError(f"no VmHWM for {self.role} ({self.pid})")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def wait_until(condition: object, timeout: float, interval: float = 0.1) -> bool:
    """Poll a zero-argument callable until it returns truthy; False on timeout."""
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())
