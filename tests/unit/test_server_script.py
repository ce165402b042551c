"""`.ci/servers` (used by `make run`): with nothing to start a server with, it says what to do."""

import os
import shutil
import socket
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "servers"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_machine_with_neither_server_nor_docker_is_told_the_one_command_for_each(
    tmp_path: Path,
) -> None:
    # A PATH holding only what the script itself needs: no server packages, no Docker.
    for tool in ("python3", "seq", "sleep", "dirname", "ls", "head"):
        found = shutil.which(tool)
        assert found is not None
        (tmp_path / tool).symlink_to(found)
    env = {
        "PATH": str(tmp_path),
        "POSTGRES_PORT": str(_closed_port()),
        "RABBITMQ_PORT": str(_closed_port()),
    }
    done = subprocess.run(
        ["/bin/bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith("PostgreSQL is not listening")
    assert "apt-get install postgresql" in lines[0]
    assert "up -d postgres" in lines[0]
    assert lines[1].startswith("RabbitMQ is not listening")
    assert "apt-get install rabbitmq-server" in lines[1]


def test_servers_that_listen_are_left_alone() -> None:
    env = {**os.environ}
    env.pop("ORDERS_DATABASE_URL", None)
    env.pop("ORDERS_AMQP_URL", None)
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = str(listening.getsockname()[1])
        done = subprocess.run(
            ["/bin/bash", str(SCRIPT)],
            env={**env, "POSTGRES_PORT": port, "RABBITMQ_PORT": port},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
