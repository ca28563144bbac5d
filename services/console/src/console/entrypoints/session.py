"""Who is signed in: the seller's JWT, as the platform hands it to the console.

Production: the platform's login sets the seller's JWT in a cookie (`CONSOLE_TOKEN_COOKIE`,
default `jm_seller_token`), or its gateway sends `Authorization: Bearer <JWT>`; the console
forwards it to the APIs, which verify it. Development (`CONSOLE_DEV_SIGN_IN=true`): a sign-in
page mints a token for a demo seller and sets that cookie.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import jwt
from fastapi import Request

SELLER_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class SignInRequired(Exception):
    """No token, or an API refused it (expired, invalid): the seller signs in again."""


@dataclass(frozen=True)
class Seller:
    seller_id: str
    token: str


def token_of(request: Request, cookie: str) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.cookies.get(cookie) or None


def seller_of(token: str) -> Seller:
    """The seller a token names, read for display only: the APIs verify the signature."""
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError as error:
        raise SignInRequired from error
    seller_id = claims.get("seller_id")
    if not isinstance(seller_id, str) or not SELLER_ID.match(seller_id):
        raise SignInRequired
    return Seller(seller_id, token)


def intent_key(seller: Seller, *parts: Any) -> str:
    """The Idempotency-Key of one intention: the same action, with the same input, on the same
    version of the same resource. A double click or a resubmitted form sends the same key, so
    the API acts once; a new version or new input is a new key."""
    text = json.dumps([seller.seller_id, *parts], sort_keys=True, separators=(",", ":"))
    return "console-" + hashlib.sha256(text.encode()).hexdigest()[:40]
