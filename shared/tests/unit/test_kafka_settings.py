"""Every Kafka client connects with the settings' credentials (the contract's KAFKA_* names)."""

from __future__ import annotations

import ssl

import pytest
from juniper_shared.kafka import broker_security
from juniper_shared.settings import KafkaSettings


def test_plaintext_needs_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_SECURITY_PROTOCOL", raising=False)
    settings = KafkaSettings(kafka_bootstrap_servers="kafka:9092")
    assert settings.kafka_client_options() == {"bootstrap_servers": "kafka:9092"}
    assert broker_security(settings) is None


def test_sasl_passes_the_principal_and_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "orders")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "orders-dev-secret")
    settings = KafkaSettings()
    assert settings.kafka_client_options() == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "orders",
        "sasl_plain_password": "orders-dev-secret",
    }
    security = broker_security(settings)
    assert security is not None
    assert (security.username, security.password, security.use_ssl) == (
        "orders",
        "orders-dev-secret",
        False,
    )
    assert "orders-dev-secret" not in repr(settings)


def test_sasl_ssl_checks_the_broker_certificate() -> None:
    settings = KafkaSettings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="payments",
        kafka_sasl_password="secret",  # type: ignore[arg-type]
    )
    context = settings.kafka_client_options()["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert broker_security(settings).use_ssl  # type: ignore[union-attr]


def test_sasl_without_credentials_refuses_to_connect() -> None:
    settings = KafkaSettings(kafka_security_protocol="SASL_PLAINTEXT")
    with pytest.raises(ValueError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        settings.kafka_client_options()
