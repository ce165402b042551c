"""docker-compose.yml and the Dockerfile run real `order-status` commands.

There is no Docker engine here, so the files are parsed and every command is
resolved through the click group the `order-status` entry point runs.
"""

import json
import re
import tomllib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from worker.cli import main

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SERVICES: dict[str, dict[str, Any]] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())[
    "services"
]
APP_SERVICES = sorted(name for name, service in SERVICES.items() if "build" in service)
WORKERS = [name for name in APP_SERVICES if SERVICES[name]["command"][0] == "run"]


def resolve(args: Sequence[str]) -> click.Context:
    """Parse `order-status ARGS` down to the leaf command without invoking anything."""
    ctx = main.make_context("order-status", list(args), resilient_parsing=False)
    while isinstance(ctx.command, click.Group):
        # Click 8.2 deprecated protected_args (the subcommand name) without a replacement.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            rest = [*ctx.protected_args, *ctx.args]
        if not rest:
            break
        name, command, rest = ctx.command.resolve_command(ctx, rest)
        assert name is not None
        assert command is not None
        ctx = command.make_context(name, rest, parent=ctx)
    assert not isinstance(ctx.command, click.Group), f"{list(args)} stops at a group"
    return ctx


def instruction(name: str) -> list[str]:
    """The exec-form arguments of the Dockerfile's last NAME instruction."""
    found = re.findall(rf"^{name}\s+(\[.*\])\s*$", DOCKERFILE, flags=re.MULTILINE)
    assert found, f"the Dockerfile has no exec-form {name}"
    value: list[str] = json.loads(found[-1])
    return value


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.partition("=")[::2] for item in env)
    return {key: str(value) for key, value in env.items()}


def test_there_are_app_services_and_workers() -> None:
    assert {"migrate", "declare"} <= set(APP_SERVICES)
    assert WORKERS


@pytest.mark.parametrize("name", APP_SERVICES)
def test_command_is_a_real_cli_command(name: str) -> None:
    command = SERVICES[name]["command"]
    assert isinstance(command, list), "use the exec form, a list"
    resolve(command)


@pytest.mark.parametrize(
    "args",
    [["run", "no-such-worker"], ["frobnicate"], ["run", "relay", "extra"], ["orders"], []],
)
def test_resolve_rejects_what_the_cli_rejects(args: list[str]) -> None:
    with pytest.raises(click.UsageError):
        resolve(args)


def test_setup_services_run_migrate_and_declare() -> None:
    assert resolve(SERVICES["migrate"]["command"]).command.name == "migrate"
    assert resolve(SERVICES["declare"]["command"]).command.name == "declare"


def test_image_runs_the_cli() -> None:
    assert instruction("ENTRYPOINT") == ["order-status"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["order-status"] == "worker.cli:main"
    resolve(instruction("CMD"))


@pytest.mark.parametrize("name", APP_SERVICES)
def test_service_is_configured(name: str) -> None:
    env = environment(SERVICES[name])
    for key in ("ORDERS_DATABASE_URL", "ORDERS_AMQP_URL", "ORDERS_NAMESPACE"):
        assert env.get(key), f"{key} is not set"


@pytest.mark.parametrize("name", WORKERS)
def test_worker_waits_for_setup(name: str) -> None:
    depends_on = SERVICES[name].get("depends_on", {})
    for setup in ("migrate", "declare"):
        assert depends_on.get(setup, {}).get("condition") == "service_completed_successfully"
