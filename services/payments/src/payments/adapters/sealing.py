"""Card tokens at rest: sealed with Fernet under the current key; previous keys still open them."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class UnreadableCard(Exception):
    """A sealed card token that no configured key opens (a key was dropped too early)."""


def key_id(key: str) -> str:
    """A short fingerprint naming the key a token is sealed with (so stale seals can be found)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


class CardSeal:
    def __init__(self, current: str, previous: Sequence[str] = ()) -> None:
        keys = [current, *previous]
        self._fernet = MultiFernet([Fernet(key) for key in keys])  # a malformed key: ValueError
        self.key_id = key_id(current)

    def seal(self, token: str) -> str:
        return self._fernet.encrypt(token.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as error:
            raise UnreadableCard("no CARD_VAULT_KEY opens this card token") from error

    def reseal(self, sealed: str) -> str:
        """The token sealed again under the current key."""
        try:
            return self._fernet.rotate(sealed.encode()).decode()
        except InvalidToken as error:
            raise UnreadableCard("no CARD_VAULT_KEY opens this card token") from error
