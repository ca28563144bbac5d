"""The notifications service's configuration (environment variables)."""

from __future__ import annotations

from email.headerregistry import Address
from email.utils import parseaddr

from juniper_shared.settings import BuyerLinkSettings
from pydantic import Field, SecretStr, field_validator, model_validator

from notifications.domain.notices import header_safe


class NotificationsSettings(BuyerLinkSettings):
    http_port: int = 8004
    buyer_link_lifetime_days: int = Field(default=90, ge=1, le=3650)
    """How long a link in an email opens, counted from when the email is composed."""
    consumer_fetch_wait_ms: int = Field(default=250, ge=0, le=5000)
    """An email a quarter of a second later is no worse; batches of the emails of a quarter
    second cost the mail log a fraction of the round trips per email (docs/performance.md)."""
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    mail_from: str = "JuniperMarket <orders@junipermarket.test>"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    """Upgrade the connection with STARTTLS (port 587 relays)."""
    smtp_tls: bool = False
    """Connect over TLS from the start (port 465 relays)."""
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    smtp_retry_attempts: int = Field(default=5, ge=1, le=20)
    smtp_retry_max_seconds: float = Field(default=30.0, gt=0, le=300)
    smtp_concurrency: int = Field(default=8, ge=1, le=32)
    """Emails of one batch in flight at once; each worker holds one SMTP connection."""

    @field_validator("mail_from")
    @classmethod
    def _one_address(cls, value: str) -> str:
        _, address = parseaddr(value)
        if "@" not in address or header_safe(value) != value.strip():
            raise ValueError('MAIL_FROM must be one address, e.g. "Shop <orders@example.com>"')
        return value.strip()

    @model_validator(mode="after")
    def _one_tls_mode(self) -> NotificationsSettings:
        if self.smtp_tls and self.smtp_starttls:
            raise ValueError("set SMTP_TLS or SMTP_STARTTLS, not both")
        return self

    def sender(self) -> Address:
        name, address = parseaddr(self.mail_from)
        return Address(display_name=name, addr_spec=address)
