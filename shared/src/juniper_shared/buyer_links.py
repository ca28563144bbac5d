"""Buyer links: a resource path signed with an expiry (HMAC-SHA256), so a link opens without a
login for as long as it lasts. Signing and verifying only; which paths get links is the
services' business."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

DEFAULT_LIFETIME = timedelta(days=90)
MIN_SECRET_BYTES = 16
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


def signature(path: str, *, expires: int, secret: str) -> str:
    """Hex HMAC-SHA256 of the expiry and the path. The expiry goes first: it is digits only,
    so the first newline separates the two and no other (path, expiry) signs the same text."""
    message = f"{expires}\n{path}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class BuyerLinkKeys:
    """The current secret (signs and verifies) and previous ones (verify only, for rotation)."""

    current: str
    previous: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for secret in (self.current, *self.previous):
            if len(secret.encode()) < MIN_SECRET_BYTES:
                raise ValueError(f"a buyer-link secret needs at least {MIN_SECRET_BYTES} bytes")

    def query(self, path: str, *, now: datetime, lifetime: timedelta = DEFAULT_LIFETIME) -> str:
        """`expires=<unix>&signature=<hex>` for `path`, valid for `lifetime` from `now`."""
        expires = int((now + lifetime).timestamp())
        return urlencode(
            {"expires": expires, "signature": signature(path, expires=expires, secret=self.current)}
        )

    def signed_url(
        self, url: str, path: str, *, now: datetime, lifetime: timedelta = DEFAULT_LIFETIME
    ) -> str:
        """`url` (which ends in `path`) with the link's query appended."""
        separator = "&" if "?" in url else "?"
        return f"{url}{separator}{self.query(path, now=now, lifetime=lifetime)}"

    def verify(self, path: str, *, expires: int, given: str, now: datetime) -> bool:
        """Whether `given` signs `path` until `expires` with any of the secrets, and `expires`
        is still ahead of `now`. Every secret is tried, in constant time each."""
        if expires <= now.timestamp() or not _HEX_DIGEST.fullmatch(given):
            return False
        matched = False
        for secret in self._all():
            expected = signature(path, expires=expires, secret=secret)
            matched |= hmac.compare_digest(expected, given.lower())
        return matched

    def _all(self) -> Sequence[str]:
        return (self.current, *self.previous)
