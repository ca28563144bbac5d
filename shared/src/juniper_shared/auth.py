"""Seller authentication: a bearer JWT (HS256) carrying a `seller_id` claim."""

from __future__ import annotations

import re
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


MAX_TOKEN_TTL_SECONDS = 86_400
"""Longest lifetime a token may claim (`AUTH_MAX_TOKEN_TTL_SECONDS` overrides it)."""

SELLER_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
"""What a `seller_id` claim looks like; it becomes part of database keys and topic keys."""


def decode_seller_id(
    token: str, secret: str, *, max_ttl_seconds: int = MAX_TOKEN_TTL_SECONDS
) -> str:
    """The seller a token speaks for; raises ApiError(401) for any token that is not valid:
    a bad signature, no `exp`, expired, a lifetime longer than `max_ttl_seconds`, or a
    `seller_id` that does not match SELLER_ID.

    Verified on every request: about 33 µs here, some 1 % of the services' CPU per order, below
    what `make bench` can tell apart, so no cache of verified tokens is kept."""
    try:
        with _short_keys_allowed():
            claims = jwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                options={"require": ["exp"], "verify_exp": True, "verify_iat": True},
            )
    except jwt.ExpiredSignatureError as error:
        raise _unauthorized("token expired") from error
    except jwt.MissingRequiredClaimError as error:
        raise _unauthorized("token has no exp claim") from error
    except jwt.InvalidTokenError as error:
        raise _unauthorized("invalid token") from error
    seller_id = claims.get("seller_id")
    if not isinstance(seller_id, str) or not seller_id:
        raise _unauthorized("token has no seller_id claim")
    if SELLER_ID.fullmatch(seller_id) is None:
        raise _unauthorized("token's seller_id is not a valid seller id")
    expires_at = float(claims["exp"])  # PyJWT checked it is a number
    issued_at = claims.get("iat")
    start = float(issued_at) if isinstance(issued_at, int | float) else time.time()
    if expires_at - start > max_ttl_seconds:
        raise _unauthorized(f"token lifetime exceeds {max_ttl_seconds} seconds")
    return seller_id


async def current_seller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """FastAPI dependency: the authenticated seller's id."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("missing bearer token")
    secret: str = request.app.state.jwt_secret
    max_ttl: int = request.app.state.max_token_ttl_seconds
    return decode_seller_id(credentials.credentials, secret, max_ttl_seconds=max_ttl)


SellerId = Annotated[str, Depends(current_seller)]


def issue_token(seller_id: str, secret: str, *, ttl_seconds: int = 3600) -> str:
    """A token for `seller_id` (demo, tests and the ops CLI), with `iat` and `exp`.

    Raises ValueError for a seller id the services would refuse."""
    if SELLER_ID.fullmatch(seller_id) is None:
        raise ValueError(f"{seller_id!r} is not a seller id ({SELLER_ID.pattern})")
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
