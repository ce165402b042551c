"""A throwaway CA, and a PostgreSQL and a RabbitMQ of the test's own that speak TLS.

The servers the other tests share are left alone: a second PostgreSQL
(`initdb` + `pg_ctl`, run as the `postgres` user) and a second RabbitMQ node
(its own node name, ports and directories, run as the `rabbitmq` user) are
started in a temporary directory, on free ports, and stopped afterwards.
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import psycopg

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQ_HOME = "/var/lib/rabbitmq"  # where the node and rabbitmqctl find the Erlang cookie
START_TIMEOUT = 60


class CannotStart(Exception):
    """This machine cannot run a server of the test's own (no binaries, not root)."""


@dataclass(frozen=True)
class Certificates:
    ca: Path
    """The CA that signed the servers' certificate."""
    other_ca: Path
    """A CA that signed nothing here: trusting only it must refuse the servers."""
    server_cert: Path
    server_key: Path


def _run(*command: str, user: str | None = None, env: dict[str, str] | None = None) -> str:
    full = ["runuser", "-u", user, "--", *command] if user else list(command)
    done = subprocess.run(full, capture_output=True, text=True, timeout=120, check=False, env=env)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(full)} failed: {done.stdout}{done.stderr}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_certificates(folder: Path) -> Certificates:
    """A CA, a server certificate it signs for localhost and 127.0.0.1, and an unrelated CA."""
    if shutil.which("openssl") is None:
        raise CannotStart("openssl is not installed")
    for name in ("ca", "other-ca"):
        _run(
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(folder / f"{name}.key"), "-out", str(folder / f"{name}.pem"),
            "-subj", f"/CN=order-status test {name}",
        )  # fmt: skip
    _run(
        "openssl", "req", "-newkey", "rsa:2048", "-nodes",
        "-keyout", str(folder / "server.key"), "-out", str(folder / "server.csr"),
        "-subj", "/CN=localhost",
    )  # fmt: skip
    (folder / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _run(
        "openssl", "x509", "-req", "-days", "2", "-in", str(folder / "server.csr"),
        "-CA", str(folder / "ca.pem"), "-CAkey", str(folder / "ca.key"), "-CAcreateserial",
        "-extfile", str(folder / "server.ext"), "-out", str(folder / "server.pem"),
    )  # fmt: skip
    for pem in folder.glob("*.pem"):
        pem.chmod(0o644)
    return Certificates(
        folder / "ca.pem", folder / "other-ca.pem", folder / "server.pem", folder / "server.key"
    )


def _owned_copy(source: Path, target: Path, user: str) -> Path:
    """A copy of a key file that only `user` may read, as both servers insist."""
    shutil.copyfile(source, target)
    entry = pwd.getpwnam(user)
    os.chown(target, entry.pw_uid, entry.pw_gid)
    target.chmod(0o600)
    return target


def _require_root_and(user: str) -> None:
    if os.geteuid() != 0:
        raise CannotStart("starting servers of the test's own needs root (to run as their users)")
    try:
        pwd.getpwnam(user)
    except KeyError as error:
        raise CannotStart(f"there is no {user} user on this machine") from error


@contextmanager
def throwaway_folder() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="order-status-tls-"))
    folder.chmod(0o755)  # the servers' users must reach their files inside
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class TlsPostgres:
    port: int

    def url(self, database: str, ca: Path, host: str = "localhost", **extra: str) -> str:
        query = "&".join(
            [f"sslmode=verify-full&sslrootcert={ca}", *(f"{k}={v}" for k, v in extra.items())]
        )
        return f"postgresql://postgres@{host}:{self.port}/{database}?{query}"


@contextmanager
def tls_postgres(folder: Path, certificates: Certificates) -> Iterator[TlsPostgres]:
    """A PostgreSQL that accepts only TLS connections over TCP, on a free port."""
    _require_root_and("postgres")
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not binaries:
        raise CannotStart("no PostgreSQL binaries under /usr/lib/postgresql")
    bin_dir = Path(binaries[-1]).parent
    data, run = folder / "pgdata", folder / "pgrun"  # run: its socket and its log
    for owned in (data, run):
        owned.mkdir()
        shutil.chown(owned, "postgres", "postgres")
    _run(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", user="postgres")
    key = _owned_copy(certificates.server_key, folder / "pg-server.key", "postgres")
    port = free_port()
    (data / "pg_hba.conf").write_text(
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\n"
        "hostnossl all all 0.0.0.0/0 reject\n"
    )
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(
            f"listen_addresses = '127.0.0.1'\nport = {port}\n"
            f"unix_socket_directories = '{run}'\nssl = on\n"
            f"ssl_cert_file = '{certificates.server_cert}'\nssl_key_file = '{key}'\n"
            "fsync = off\nshared_buffers = 16MB\nmax_connections = 40\n"
        )
    log = run / "postgres.log"
    _run(
        str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "start",
        user="postgres",
    )  # fmt: skip
    try:
        yield TlsPostgres(port)
    finally:
        _run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop", user="postgres")


def drop_database(server: TlsPostgres, ca: Path, name: str) -> None:
    with psycopg.connect(server.url("postgres", ca), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class TlsRabbit:
    node: str
    tls_port: int

    def url(self, ca: Path, **extra: str) -> str:
        query = "&".join([f"cacertfile={ca}", *(f"{k}={v}" for k, v in extra.items())])
        return f"amqps://guest:guest@localhost:{self.tls_port}/%2F?{query}"


@contextmanager
def tls_rabbitmq(folder: Path, certificates: Certificates) -> Iterator[TlsRabbit]:
    """A RabbitMQ node of its own with a TLS listener, started and stopped here."""
    _require_root_and("rabbitmq")
    if not Path(RABBITMQ_SERVER).exists() or shutil.which("rabbitmqctl") is None:
        raise CannotStart("RabbitMQ is not installed")
    home = folder / "rabbitmq"
    (home / "mnesia").mkdir(parents=True)
    (home / "log").mkdir()
    key = _owned_copy(certificates.server_key, home / "server.key", "rabbitmq")
    node = f"order-status-tls-{uuid4().hex[:8]}@localhost"
    tcp_port, tls_port, dist_port = free_port(), free_port(), free_port()
    (home / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{tcp_port}\n"
        f"listeners.ssl.default = 127.0.0.1:{tls_port}\n"
        f"ssl_options.cacertfile = {certificates.ca}\n"
        f"ssl_options.certfile = {certificates.server_cert}\n"
        f"ssl_options.keyfile = {key}\n"
        "ssl_options.verify = verify_none\n"
        "ssl_options.fail_if_no_peer_cert = false\n"
    )
    (home / "enabled_plugins").write_text("[].\n")
    (home / "rabbitmq-env.conf").write_text("")
    _run("chown", "-R", "rabbitmq:rabbitmq", str(home))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": RABBITMQ_HOME,
        "RABBITMQ_CONF_ENV_FILE": str(home / "rabbitmq-env.conf"),
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(tcp_port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
        "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
        "RABBITMQ_LOG_BASE": str(home / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(home / "pid"),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
    }
    with (folder / "rabbitmq.out").open("w") as out:
        server = subprocess.Popen(
            ["runuser", "-u", "rabbitmq", "--", "env", *(f"{k}={v}" for k, v in env.items()),
             RABBITMQ_SERVER],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _await_node(node, server, folder / "rabbitmq.out")
        yield TlsRabbit(node, tls_port)
    finally:
        subprocess.run(
            ["rabbitmqctl", "-n", node, "stop"], capture_output=True, timeout=60, check=False
        )
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def _await_node(node: str, server: "subprocess.Popen[bytes]", output: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"RabbitMQ node {node} exited: {output.read_text()[-2000:]}")
        done = subprocess.run(
            ["rabbitmqctl", "-n", node, "await_startup", "--timeout", "5"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if done.returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"RabbitMQ node {node} did not start: {output.read_text()[-2000:]}")
