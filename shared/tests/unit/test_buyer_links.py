"""Buyer links: what opens, what does not, and rotating the secret."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest
from juniper_shared.buyer_links import BuyerLinkKeys, signature
from juniper_shared.settings import BuyerLinkSettings
from pydantic import ValidationError

NOW = datetime(2026, 12, 1, tzinfo=UTC)
PATH = "/v1/invoices/inv-1/document"
OLD, NEW = "old-buyer-link-secret", "new-buyer-link-secret"


def link(keys: BuyerLinkKeys, path: str = PATH) -> tuple[int, str]:
    query = parse_qs(keys.query(path, now=NOW))
    return int(query["expires"][0]), query["signature"][0]


def test_a_link_opens_its_own_resource_until_it_expires() -> None:
    keys = BuyerLinkKeys(NEW)
    expires, given = link(keys)
    assert expires == int((NOW + timedelta(days=90)).timestamp())
    assert keys.verify(PATH, expires=expires, given=given, now=NOW)
    assert not keys.verify(PATH, expires=expires, given=given, now=NOW + timedelta(days=91))
    assert not keys.verify("/v1/invoices/inv-2/document", expires=expires, given=given, now=NOW)
    assert not keys.verify(PATH, expires=expires + 1, given=given, now=NOW)
    assert not keys.verify(PATH, expires=expires, given=given[:-1] + "x", now=NOW)
    assert not keys.verify(PATH, expires=expires, given="é" * 64, now=NOW)


def test_the_expiry_and_path_cannot_be_shifted_into_each_other() -> None:
    assert signature("/a", expires=12, secret=NEW) != signature("2\n/a", expires=1, secret=NEW)


def test_links_signed_with_a_rotated_out_secret_still_open() -> None:
    expires, given = link(BuyerLinkKeys(OLD))
    assert BuyerLinkKeys(NEW, previous=(OLD,)).verify(PATH, expires=expires, given=given, now=NOW)
    assert not BuyerLinkKeys(NEW).verify(PATH, expires=expires, given=given, now=NOW)
    # New links are signed with the current secret only.
    expires, given = link(BuyerLinkKeys(NEW, previous=(OLD,)))
    assert BuyerLinkKeys(NEW).verify(PATH, expires=expires, given=given, now=NOW)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        BuyerLinkKeys("short")


def test_a_service_without_the_secret_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BUYER_LINK_SECRET", raising=False)
    with pytest.raises(ValidationError, match="buyer_link_secret"):
        BuyerLinkSettings(auth_jwt_secret="dev-only-secret")  # type: ignore[arg-type]
    monkeypatch.setenv("BUYER_LINK_SECRET", NEW)
    monkeypatch.setenv("BUYER_LINK_PREVIOUS_SECRETS", f" {OLD} ,")
    keys = BuyerLinkSettings(auth_jwt_secret="dev-only-secret").buyer_link_keys()  # type: ignore[arg-type]
    assert keys == BuyerLinkKeys(NEW, previous=(OLD,))
