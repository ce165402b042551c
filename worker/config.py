"""Settings, read once from the environment (prefix ORDERS_) and passed down."""

from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.durations import DEFAULT_RETRY_DELAYS, parse_delays

REPO_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
REPO_EXAMPLE_RULES = Path(__file__).resolve().parent.parent / "rules" / "example.yaml"


class Settings(BaseSettings):
    """Everything a worker or the CLI needs to know about its surroundings."""

    model_config = SettingsConfigDict(env_prefix="ORDERS_", frozen=True, extra="ignore")

    database_url: str = "postgresql://postgres@127.0.0.1:5432/orders"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    namespace: str = Field(
        default="orders",
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,39}$",
        description="Prefix of every exchange and queue name.",
    )
    migrations_dir: Path = REPO_MIGRATIONS

    batch_size: PositiveInt = Field(default=100, description="Commands applied per transaction.")
    batch_wait_ms: PositiveInt = Field(
        default=5, description="How long a started batch waits for more commands."
    )
    delivery_limit: PositiveInt = Field(
        default=20, description="Deliveries of one message before the queue dead-letters it."
    )
    relay_batch_size: PositiveInt = Field(
        default=500, description="Events the relay keeps in flight, awaiting their confirms."
    )
    relay_sweep_seconds: PositiveFloat = Field(
        default=1.0, description="The relay also looks at the outbox this often."
    )
    workflow_refresh_seconds: PositiveFloat = Field(
        default=10.0, description="How often workers read the workflow tables again."
    )
    lock_timeout_ms: PositiveInt = 5_000
    statement_timeout_ms: PositiveInt = 30_000
    reconnect_max_seconds: PositiveFloat = Field(
        default=30.0, description="Cap on the wait between reconnection attempts."
    )
    heartbeat_seconds: PositiveInt = 30
    stop_grace_seconds: PositiveFloat = Field(
        default=30.0,
        description="After SIGTERM or SIGINT, how long a worker may take to finish the batch "
        "in hand (commit, confirm, ack) before it gives the batch back and exits.",
    )
    give_up_after_seconds: PositiveFloat = Field(
        default=300.0,
        description="How long a worker keeps trying through a fault that will not clear by "
        "itself (login refused, database missing, schema not migrated) before it exits "
        "non-zero, so that its supervisor restarts it and alerts.",
    )
    retry_delays: str = Field(
        default=DEFAULT_RETRY_DELAYS,
        description="Retry tiers: how long a message waits before each new attempt.",
    )
    contention_retries: int = Field(
        default=3,
        ge=0,
        description="In-place retries of a batch that hits a lock, deadlock or serialization "
        "failure, before its culprits wait in the retry tiers.",
    )

    rules_file: Path = Field(
        default=REPO_EXAMPLE_RULES, description="The automation rules the rules worker runs."
    )
    rules_max_depth: PositiveInt = Field(
        default=5, description="Rule-caused steps after which no rule fires for an order's event."
    )
    rules_scan_seconds: PositiveFloat = Field(
        default=30.0, description="How often the rules worker looks for time-based firings."
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    @field_validator("retry_delays")
    @classmethod
    def _delays_are_durations(cls, value: str) -> str:
        parse_delays(value)
        return value

    @property
    def retry_delays_ms(self) -> tuple[int, ...]:
        """The retry tiers in milliseconds, shortest wait first as configured."""
        return parse_delays(self.retry_delays)

    @property
    def prefetch_count(self) -> int:
        """Twice the batch, so the next batch is already on its way while one commits."""
        return 2 * self.batch_size
