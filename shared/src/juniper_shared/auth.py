"""Seller authentication: a bearer JWT (HS256) carrying a `seller_id` claim."""

from __future__ import annotations

from typing import Annotated

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from juniper_shared.errors import ApiError

_bearer = HTTPBearer(auto_error=False, description="JWT signed HS256 with a `seller_id` claim")


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


def decode_seller_id(token: str, secret: str) -> str:
    """The seller a token speaks for; raises ApiError(401) for any token that is not valid."""
    try:
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
    return seller_id


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
    import time

    now = int(time.time())
    return jwt.encode(
        {"seller_id": seller_id, "iat": now, "exp": now + ttl_seconds}, secret, algorithm="HS256"
    )
