"""SMTP configuration from the environment: defaults for local Mailpit, refusals for bad values."""

from __future__ import annotations

import pytest
from notifications.settings import NotificationsSettings
from pydantic import ValidationError


def test_defaults_point_at_the_local_mail_inbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_JWT_SECRET", "dev-only-secret")
    settings = NotificationsSettings()
    assert (settings.smtp_host, settings.smtp_port, settings.http_port) == ("127.0.0.1", 1025, 8004)
    assert str(settings.sender()) == "JuniperMarket <orders@junipermarket.test>"
    assert (settings.smtp_retry_attempts, settings.smtp_retry_max_seconds) == (5, 30.0)


def test_production_relay_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "AUTH_JWT_SECRET": "dev-only-secret",
        "SMTP_HOST": "smtp.relay.example",
        "SMTP_PORT": "587",
        "SMTP_USERNAME": "juniper",
        "SMTP_PASSWORD": "s3cret-password",
        "SMTP_STARTTLS": "true",
        "MAIL_FROM": "Orders <orders@junipermarket.com>",
    }.items():
        monkeypatch.setenv(name, value)
    settings = NotificationsSettings()
    assert settings.smtp_starttls
    assert settings.smtp_password is not None
    assert "s3cret" not in repr(settings)
    assert settings.sender().addr_spec == "orders@junipermarket.com"


@pytest.mark.parametrize(
    "overrides",
    [
        {"mail_from": "not an address"},
        {"mail_from": "Shop <shop@example.com>\r\nBcc: victim@example.com"},
        {"smtp_tls": True, "smtp_starttls": True},
    ],
)
def test_a_bad_mail_configuration_refuses_to_start(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        NotificationsSettings(auth_jwt_secret="dev-only-secret", **overrides)  # type: ignore[arg-type]


def test_without_a_buyer_link_secret_the_service_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BUYER_LINK_SECRET", raising=False)
    with pytest.raises(ValidationError, match="buyer_link_secret"):
        NotificationsSettings(auth_jwt_secret="dev-only-secret")  # type: ignore[arg-type]
