"""Settings come from the environment once; logs carry their context."""

import json
import logging

import pytest
from pydantic import ValidationError

from worker.config import Settings
from worker.logs import ContextTextFormatter, configure_logging


def test_defaults_point_at_the_local_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ORDERS_DATABASE_URL", "ORDERS_AMQP_URL", "ORDERS_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.database_url == "postgresql://postgres@127.0.0.1:5432/orders"
    assert settings.amqp_url == "amqp://guest:guest@127.0.0.1:5672/%2F"
    assert settings.namespace == "orders"
    assert settings.prefetch_count == 2 * settings.batch_size


def test_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_NAMESPACE", "tenant-a")
    monkeypatch.setenv("ORDERS_BATCH_SIZE", "7")
    settings = Settings()
    assert (settings.namespace, settings.batch_size, settings.prefetch_count) == ("tenant-a", 7, 14)


@pytest.mark.parametrize("namespace", ["", "Orders", "a b", "x" * 41])
def test_a_namespace_that_cannot_prefix_queue_names_is_refused(namespace: str) -> None:
    with pytest.raises(ValidationError):
        Settings(namespace=namespace)


def test_text_logs_append_the_context_fields() -> None:
    record = logging.LogRecord("worker", logging.INFO, "f.py", 1, "command %s", ("applied",), None)
    record.message_id = "m-1"
    record.detail = "two words"
    line = ContextTextFormatter("%(levelname)s %(message)s").format(record)
    assert line == "INFO command applied message_id=m-1 detail='two words'"


def test_json_logs_are_one_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("INFO", "json")
    try:
        logging.getLogger("worker.test").info(
            "command applied", extra={"message_id": "m-1", "correlation_id": "c-1"}
        )
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    entry = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert entry["message"] == "command applied"
    assert entry["level"] == "INFO"
    assert (entry["message_id"], entry["correlation_id"]) == ("m-1", "c-1")
