"""Seller authentication: a bearer JWT (HS256) carrying a `seller_id` claim."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from juniper_shared.errors import ApiError

_bearer = HTTPBearer(auto_error=False, description="JWT signed HS256 with a `seller_id` claim")


MIN_SECRET_BYTES = 32
"""HS256 wants a key at least as long as its hash (RFC 7518, section 3.2)."""


def short_secret_warning(secret: str) -> str | None:
    """What to tell the operator, once at start, when `AUTH_JWT_SECRET` is shorter than HS256
    wants. The contract's local secret, `dev-only-secret`, is 15 bytes: the services say so once
    in their own log, rather than PyJWT on stderr at each process's first request."""
    length = len(secret.encode())
    if length >= MIN_SECRET_BYTES:
        return None
    return (
        f"AUTH_JWT_SECRET is {length} bytes; HS256 wants at least {MIN_SECRET_BYTES} "
        "(RFC 7518, section 3.2): fine for local development, use a longer one anywhere else"
    )


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


VERIFIED_TOKENS_KEPT = 4096
"""Tokens whose signature this process verified, kept with their seller until they expire."""

_verified: dict[tuple[str, str], tuple[str, float]] = {}
"""(token, secret) -> (seller_id, expiry as a Unix time; infinity when the token has none)."""


def decode_seller_id(token: str, secret: str) -> str:
    """The seller a token speaks for; raises ApiError(401) for any token that is not valid.

    A token verified once is trusted again until its `exp`, without checking its HMAC and
    parsing its claims again (a seller's portal sends the same token with every request; the
    check was about 3 % of the orders service's CPU). Only time can invalidate a token that was
    valid: `nbf` and `iat` only become more valid, and the secret is part of the key."""
    key = (token, secret)
    known = _verified.get(key)
    if known is not None:
        seller_id, expires_at = known
        if time.time() < expires_at:
            return seller_id
        del _verified[key]
    seller_id, expires_at = _verify(token, secret)
    if len(_verified) >= VERIFIED_TOKENS_KEPT:
        del _verified[next(iter(_verified))]  # the oldest: dicts keep insertion order
    _verified[key] = (seller_id, expires_at)
    return seller_id


def _verify(token: str, secret: str) -> tuple[str, float]:
    try:
        with _short_keys_allowed():
            claims = jwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                options={"require": [], "verify_exp": True},
            )
    except jwt.ExpiredSignatureError as error:
        raise _unauthorized("token expired") from error
    except jwt.InvalidTokenError as error:
        raise _unauthorized("invalid token") from error
    seller_id = claims.get("seller_id")
    if not isinstance(seller_id, str) or not seller_id or len(seller_id) > 64:
        raise _unauthorized("token has no seller_id claim")
    expires_at = claims.get("exp")
    return seller_id, float(expires_at) if expires_at is not None else float("inf")


async def current_seller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """FastAPI dependency: the authenticated seller's id."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("missing bearer token")
    secret: str = request.app.state.jwt_secret
    return decode_seller_id(credentials.credentials, secret)


SellerId = Annotated[str, Depends(current_seller)]


def issue_token(seller_id: str, secret: str, *, ttl_seconds: int = 3600) -> str:
    """A token for `seller_id` (demo, tests and the ops CLI)."""
    now = int(time.time())
    with _short_keys_allowed():
        return jwt.encode(
            {"seller_id": seller_id, "iat": now, "exp": now + ttl_seconds},
            secret,
            algorithm="HS256",
        )


@contextmanager
def _short_keys_allowed() -> Iterator[None]:
    """PyJWT's warning for a short key, off: `short_secret_warning` says it once, at start.
    Only verifying and issuing a token pay for it, not a request whose token is known."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        yield
