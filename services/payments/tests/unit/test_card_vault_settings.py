"""The payments service refuses to start without a usable card vault key."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from payments.adapters.sealing import CardSeal, UnreadableCard
from payments.settings import PaymentsSettings
from pydantic import ValidationError


def test_without_a_card_vault_key_the_service_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CARD_VAULT_KEY", raising=False)
    with pytest.raises(ValidationError, match="card_vault_key"):
        PaymentsSettings(auth_jwt_secret="dev-only-secret")  # type: ignore[arg-type]
    monkeypatch.setenv("CARD_VAULT_KEY", "not-a-fernet-key-but-long-enough-to-pass-44-chars")
    with pytest.raises(ValidationError, match="Fernet key"):
        PaymentsSettings(auth_jwt_secret="dev-only-secret")  # type: ignore[arg-type]


def test_previous_keys_open_what_they_sealed_and_nothing_else_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("CARD_VAULT_KEY", new)
    monkeypatch.setenv("CARD_VAULT_PREVIOUS_KEYS", f"{old}, ")
    current, previous = PaymentsSettings(auth_jwt_secret="dev-only-secret").card_vault_keys()  # type: ignore[arg-type]
    assert (current, previous) == (new, (old,))
    sealed = CardSeal(old).seal("tok_visa")
    assert "tok_visa" not in sealed
    assert CardSeal(current, previous).open(sealed) == "tok_visa"
    with pytest.raises(UnreadableCard):
        CardSeal(new).open(sealed)
