"""Configuration from the environment variables the contract fixes."""

from __future__ import annotations

import ssl
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from juniper_shared.buyer_links import BuyerLinkKeys


class KafkaSettings(BaseSettings):
    """Where Kafka is and who this process is to it (the contract's "Kafka access")."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # PLAINTEXT with no credentials: what unit tests and a bare broker need; the local stack,
    # the tests on real infrastructure and Kubernetes set SASL.
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_ssl_ca_file: str = ""
    """PEM bundle that signs the broker's certificate under SASL_SSL (default: the system's)."""

    def kafka_client_options(self) -> dict[str, Any]:
        """Keyword arguments for every aiokafka client: the servers and the credentials.
        Raises ValueError under SASL without credentials (checked here, where a client is
        made, so that settings used for anything else need none)."""
        options: dict[str, Any] = {"bootstrap_servers": self.kafka_bootstrap_servers}
        if self.kafka_security_protocol == "PLAINTEXT":
            return options
        if not (self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        options.update(
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_plain_username=self.kafka_sasl_username,
            sasl_plain_password=self.kafka_sasl_password.get_secret_value(),
        )
        if self.kafka_security_protocol == "SASL_SSL":
            options["ssl_context"] = ssl.create_default_context(
                cafile=self.kafka_ssl_ca_file or None
            )
        return options


class ServiceSettings(KafkaSettings):
    """What every service reads; a service subclasses it to add its own."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

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
    consumer_fetch_wait_ms: int = Field(default=100, ge=0, le=5000)
    """How long the broker may hold a fetch to gather more records (0: it answers as soon as
    one is there). Waiting gives bigger batches: fewer fetches, offset commits and database
    round trips per record, for a tenth of a second per hop."""
    consumer_poison_after: int = Field(default=3, ge=1, le=100)
    """A record that fails this many times in a row, the same way, goes to the DLQ whatever
    the failure (one that only ever fails alone is not a dependency being down)."""
    outbox_poll_seconds: float = Field(default=5.0, gt=0)
    lag_interval_seconds: float = Field(default=15.0, gt=0)
    """How often consumer lag is measured for /metrics."""
    log_level: str = "INFO"
    public_base_url: str = ""
    """Where this service is reached from outside, for links (defaults to http://host:port)."""

    def base_url(self) -> str:
        return self.public_base_url or f"http://{self.http_host}:{self.http_port}"


def comma_separated(value: str) -> tuple[str, ...]:
    """A list variable (`BUYER_LINK_PREVIOUS_SECRETS`...): comma-separated, blanks dropped."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


class BuyerLinkSettings(ServiceSettings):
    """A service that signs or verifies buyer links (invoicing, notifications)."""

    # Required: a service started without it refuses to start, like AUTH_JWT_SECRET.
    buyer_link_secret: SecretStr = Field(min_length=16)
    buyer_link_previous_secrets: SecretStr = SecretStr("")
    """Secrets rotated out, comma-separated: links they signed still open until they expire."""

    def buyer_link_keys(self) -> BuyerLinkKeys:
        return BuyerLinkKeys(
            current=self.buyer_link_secret.get_secret_value(),
            previous=comma_separated(self.buyer_link_previous_secrets.get_secret_value()),
        )
