"""Seller tokens: what a request with a given token is answered, including after the token was
accepted once (the process keeps verified tokens until they expire)."""

from __future__ import annotations

import re
import time

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from juniper_shared import auth
from juniper_shared.auth import decode_seller_id, issue_token
from juniper_shared.errors import ApiError

SECRET = "test-secret-that-is-long-enough-for-hs256"


def _refusal(token: str, secret: str = SECRET) -> str:
    with pytest.raises(ApiError) as refused:
        decode_seller_id(token, secret)
    assert refused.value.status == 401
    return refused.value.message


def test_a_valid_token_names_its_seller_every_time() -> None:
    token = issue_token("seller-a", SECRET)
    assert decode_seller_id(token, SECRET) == "seller-a"
    assert decode_seller_id(token, SECRET) == "seller-a"


def test_a_token_accepted_once_is_refused_once_it_expires() -> None:
    expires_at = int(time.time()) + 1
    token = jwt.encode({"seller_id": "seller-a", "exp": expires_at}, SECRET, algorithm="HS256")
    assert decode_seller_id(token, SECRET) == "seller-a"
    while time.time() < expires_at:
        time.sleep(0.05)
    assert _refusal(token) == "token expired"


def test_a_token_accepted_under_one_secret_is_refused_under_another() -> None:
    token = issue_token("seller-a", SECRET)
    assert decode_seller_id(token, SECRET) == "seller-a"
    assert _refusal(token, "another-secret-that-is-long-enough-too") == "invalid token"


def test_bad_tokens_are_refused_every_time() -> None:
    forged = jwt.encode({"seller_id": "seller-a"}, "not-the-secret-but-long-enough", "HS256")
    no_seller = jwt.encode({"sub": "someone", "exp": time.time() + 60}, SECRET, "HS256")
    for _ in range(2):
        assert _refusal(forged) == "invalid token"
        assert _refusal(no_seller) == "token has no seller_id claim"
        assert _refusal("not-a-jwt") == "invalid token"


@pytest.mark.filterwarnings("error::jwt.warnings.InsecureKeyLengthWarning")
def test_the_local_secret_issues_and_verifies_tokens_without_a_warning_per_process() -> None:
    # The contract's local secret is shorter than HS256 wants; the services say so once, at
    # start (below), rather than PyJWT on stderr at the first request of each process.
    local_secret = "dev-only-secret"
    token = issue_token("seller-short", local_secret)
    assert decode_seller_id(token, local_secret) == "seller-short"


def test_a_secret_shorter_than_hs256_wants_is_named_at_start() -> None:
    warning = auth.short_secret_warning("dev-only-secret")
    assert warning is not None and "15 bytes" in warning and "at least 32" in warning
    assert auth.short_secret_warning("x" * 32) is None


def _claims(**claims: object) -> str:
    return jwt.encode(claims, SECRET, algorithm="HS256")


def test_a_token_without_exp_is_refused() -> None:
    assert _refusal(_claims(seller_id="seller-a", iat=int(time.time()))) == (
        "token has no exp claim"
    )


@pytest.mark.parametrize(
    ("lifetime", "with_iat", "accepted"),
    [(86_400, True, True), (86_401, True, False), (86_000, False, True), (90_000, False, False)],
)
def test_a_token_living_longer_than_the_maximum_is_refused(
    lifetime: int, with_iat: bool, accepted: bool
) -> None:
    now = int(time.time())
    claims: dict[str, object] = {"seller_id": "seller-a", "exp": now + lifetime}
    if with_iat:
        claims["iat"] = now
    token = _claims(**claims)
    if accepted:
        assert decode_seller_id(token, SECRET) == "seller-a"
    else:
        assert "lifetime" in _refusal(token)
    # A shorter maximum (AUTH_MAX_TOKEN_TTL_SECONDS) applies to the same token.
    with pytest.raises(ApiError):
        decode_seller_id(token, SECRET, max_ttl_seconds=60)


@given(st.text(max_size=70) | st.from_regex(r"[a-z0-9][a-z0-9-]{0,62}", fullmatch=True))
@settings(max_examples=300, deadline=None)
def test_a_seller_id_is_accepted_exactly_when_it_matches_the_pattern(seller_id: str) -> None:
    token = _claims(seller_id=seller_id, exp=int(time.time()) + 600)
    valid = re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", seller_id) is not None
    if valid:
        assert decode_seller_id(token, SECRET) == seller_id
    else:
        _refusal(token)


@pytest.mark.parametrize(
    "seller_id",
    ["$where", "seller-a ", "seller\x00a", "seller:a", "Seller-A", "-a", "a" * 64, "", "\u0661"],
)
def test_edge_case_seller_ids_are_refused_and_never_issued(seller_id: str) -> None:
    _refusal(_claims(seller_id=seller_id, exp=int(time.time()) + 600))
    with pytest.raises(ValueError, match="not a seller id"):
        issue_token(seller_id, SECRET)
