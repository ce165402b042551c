"""Broker users made for one test with `rabbitmqctl`, and removed after it."""

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit
from uuid import uuid4

import pytest


@dataclass(frozen=True)
class BrokerUser:
    name: str
    password: str
    url: str


def rabbitmqctl(*args: str, node: str | None = None) -> str:
    """Run rabbitmqctl against the local node (or `node`); fail the test with its output."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed: broker users cannot be created")
    command = ["rabbitmqctl", *(["-n", node] if node else []), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed: {done.stdout}{done.stderr}")
    return done.stdout


def with_credentials(amqp_url: str, user: str, password: str) -> str:
    """`amqp_url` logging in as `user` instead."""
    parts = urlsplit(amqp_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def password_hash(password: str) -> str:
    """RabbitMQ's salted SHA-256 password hash, as definitions carry it."""
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


@contextmanager
def broker_users(
    amqp_url: str, document: dict[str, Any], names: list[str], node: str | None = None
) -> Iterator[dict[str, BrokerUser]]:
    """The `names` users of a definitions `document`, imported under unique names.

    Each gets a random password and exactly the permissions the document gives
    it; all are deleted afterwards. Returns them by their name in the document.
    """
    run = uuid4().hex[:8]
    made = {
        name: BrokerUser(f"order-status-test-{run}-{name}", password, "")
        for name, password in ((name, uuid4().hex) for name in names)
    }
    made = {
        name: BrokerUser(
            user.name, user.password, with_credentials(amqp_url, user.name, user.password)
        )
        for name, user in made.items()
    }
    imported = {
        "users": [
            {
                **entry,
                "name": made[entry["name"]].name,
                "password_hash": password_hash(made[entry["name"]].password),
            }
            for entry in document["users"]
            if entry["name"] in made
        ],
        "permissions": [
            {**entry, "user": made[entry["user"]].name}
            for entry in document["permissions"]
            if entry["user"] in made
        ],
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(imported, file)
        file.flush()
        os.chmod(file.name, 0o644)  # rabbitmqctl may read it as another OS user
        try:
            rabbitmqctl("import_definitions", file.name, node=node)
            yield made
        finally:
            for user in made.values():
                rabbitmqctl("delete_user", user.name, node=node)
