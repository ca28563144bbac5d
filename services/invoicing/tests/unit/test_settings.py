"""Invoicing refuses to start without the secret that checks buyer links."""

from __future__ import annotations

import pytest
from invoicing.settings import InvoicingSettings
from pydantic import ValidationError


def test_without_a_buyer_link_secret_the_service_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BUYER_LINK_SECRET", raising=False)
    with pytest.raises(ValidationError, match="buyer_link_secret"):
        InvoicingSettings(auth_jwt_secret="dev-only-secret")  # type: ignore[arg-type]
    monkeypatch.setenv("BUYER_LINK_SECRET", "short")
    with pytest.raises(ValidationError, match="buyer_link_secret"):
        InvoicingSettings(auth_jwt_secret="dev-only-secret")  # type: ignore[arg-type]
