"""The console's configuration (environment variables)."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsoleSettings(BaseSettings):
    """Where the four APIs are, how the seller's token arrives, and the development sign-in."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    http_host: str = "127.0.0.1"
    http_port: int = 8000
    log_level: str = "INFO"
    orders_url: str = "http://127.0.0.1:8001"
    invoicing_url: str = "http://127.0.0.1:8002"
    payments_url: str = "http://127.0.0.1:8003"
    notifications_url: str = "http://127.0.0.1:8004"
    api_timeout_seconds: float = Field(default=10.0, gt=0, le=60)

    console_token_cookie: str = "jm_seller_token"  # noqa: S105 - a cookie name
    """The cookie the platform's login sets to the seller's JWT (an `Authorization: Bearer`
    header set by the platform's gateway is read first)."""
    console_sign_in_url: str = ""
    """The platform's login page: the console sends a seller without a session there."""
    console_secure_cookies: bool = True
    """The development sign-in's cookie is `Secure` unless this is off (plain-HTTP localhost)."""

    console_dev_sign_in: bool = False
    """A sign-in page listing the demo sellers, which mints their tokens: development only."""
    console_dev_sellers: str = "juniper-pottery,harbour-goods"
    auth_jwt_secret: SecretStr | None = None
    """Needed only by the development sign-in, to mint tokens; the APIs verify every token."""
    console_dev_token_ttl_seconds: int = Field(default=8 * 3600, ge=60, le=86400)

    console_poll_seconds: float = Field(default=2.0, gt=0, le=60)
    """How often a screen asks for what changed (the order, its invoice, payment and emails)."""

    @model_validator(mode="after")
    def _dev_sign_in_needs_secret(self) -> ConsoleSettings:
        if self.console_dev_sign_in and (
            self.auth_jwt_secret is None or len(self.auth_jwt_secret.get_secret_value()) < 8
        ):
            raise ValueError("CONSOLE_DEV_SIGN_IN needs AUTH_JWT_SECRET to mint demo tokens")
        return self

    def dev_sellers(self) -> list[str]:
        return [seller.strip() for seller in self.console_dev_sellers.split(",") if seller.strip()]
