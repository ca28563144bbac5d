"""Where the CLI finds Kafka and the database: the services' own environment variables."""

from __future__ import annotations

from juniper_shared.auth import MAX_TOKEN_TTL_SECONDS
from juniper_shared.settings import KafkaSettings
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

DEV_JWT_SECRET = "dev-only-secret"  # noqa: S105 -- the documented local-only secret


class OpsSettings(KafkaSettings):
    """The Kafka connection (as principal `ops`) and the database, from the environment."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    mongodb_url: str = "mongodb://127.0.0.1:27017"
    mongodb_database: str = ""
    """Overrides the database name (default: the service's name, as the services do)."""
    kafka_topic_prefix: str = ""
    auth_jwt_secret: SecretStr | None = None
    auth_max_token_ttl_seconds: int = Field(default=MAX_TOKEN_TTL_SECONDS, ge=1)
    """The services refuse tokens that live longer; `token --ttl` stays within it."""
