"""The payments service's configuration (environment variables)."""

from __future__ import annotations

from cryptography.fernet import Fernet
from juniper_shared.settings import ServiceSettings, comma_separated
from pydantic import Field, SecretStr, field_validator


class PaymentsSettings(ServiceSettings):
    http_port: int = 8003
    card_processor_url: str = "http://127.0.0.1:8010"
    card_processor_api_key: SecretStr | None = None
    payment_request_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    """Per processor call; above the sandbox's 5 s for `tok_slow`."""
    # Transient faults: bounded by calls and by total time, well inside Kafka's 300 s poll limit.
    payment_retry_attempts: int = Field(default=5, ge=1, le=10)
    payment_retry_max_seconds: float = Field(default=20.0, ge=0, le=120)
    payment_retry_backoff_seconds: float = Field(default=0.5, ge=0, le=10)
    payment_retry_backoff_max_seconds: float = Field(default=8.0, ge=0, le=60)
    payment_max_concurrent_charges: int = Field(default=16, ge=1, le=200)
    payment_card_wait_seconds: float = Field(default=8.0, ge=0, le=60)
    """How long a charge waits for its card to reach the vault before failing `card_unavailable`."""
    payment_pending_scan_seconds: float = Field(default=30.0, gt=0)
    payment_pending_lease_seconds: float = Field(default=90.0, gt=0)
    """A pending attempt this old is no longer being charged by anyone: charge it again."""
    payment_shutdown_grace_seconds: float = Field(default=8.0, ge=0)
    # Required: a service started without a key refuses to start, like AUTH_JWT_SECRET.
    card_vault_key: SecretStr = Field(min_length=44)
    """Fernet key (url-safe base64 of 32 bytes) that seals card tokens at rest."""
    card_vault_previous_keys: SecretStr = SecretStr("")
    """Keys rotated out, comma-separated: they still open tokens sealed before the rotation."""

    @field_validator("card_vault_key", "card_vault_previous_keys")
    @classmethod
    def _fernet_keys(cls, value: SecretStr) -> SecretStr:
        for key in comma_separated(value.get_secret_value()):
            try:
                Fernet(key)
            except ValueError:
                raise ValueError(
                    "a card vault key must be a Fernet key: url-safe base64 of 32 bytes"
                ) from None
        return value

    def card_vault_keys(self) -> tuple[str, tuple[str, ...]]:
        """The current key and the previous ones."""
        return (
            self.card_vault_key.get_secret_value(),
            comma_separated(self.card_vault_previous_keys.get_secret_value()),
        )


def card_waits(total_seconds: float, *, first: float = 0.25) -> tuple[float, ...]:
    """Doubling pauses that add up to at most `total_seconds`."""
    waits: list[float] = []
    pause = first
    while sum(waits) + pause <= total_seconds:
        waits.append(pause)
        pause *= 2
    return tuple(waits)
