"""Configuration from the environment variables the contract fixes."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """What every service reads; a service subclasses it to add its own."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    mongodb_url: str = "mongodb://127.0.0.1:27017"
    mongodb_database: str = ""
    # Required: a service started without a secret refuses to start.
    auth_jwt_secret: SecretStr = Field(min_length=8)
    auth_max_token_ttl_seconds: int = Field(default=86_400, ge=1)
    """Longest lifetime (`exp` - `iat`, or `exp` - now without `iat`) a token may claim."""
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # FerretDB deadlocks when its PostgreSQL pool runs dry; the four services' pools together
    # must stay below it (LOCAL_INFRA.md), so each one is capped.
    mongodb_max_pool_size: int = Field(default=40, ge=1, le=200)
    kafka_topic_prefix: str = ""
    """Prepended to every topic name; lets test runs share one broker without crosstalk."""
    consumer_batch_size: int = Field(default=500, ge=1, le=5000)
    consumer_fetch_wait_ms: int = Field(default=0, ge=0, le=5000)
    """How long the broker may hold a fetch to gather more records (0: it answers as soon as
    one is there). A consumer whose work is not urgent waits, for bigger batches: fewer
    fetches, offset commits and database round trips per record."""
    outbox_poll_seconds: float = Field(default=5.0, gt=0)
    lag_interval_seconds: float = Field(default=15.0, gt=0)
    """How often consumer lag is measured for /metrics."""
    log_level: str = "INFO"
    public_base_url: str = ""
    """Where this service is reached from outside, for links (defaults to http://host:port)."""

    def base_url(self) -> str:
        return self.public_base_url or f"http://{self.http_host}:{self.http_port}"
