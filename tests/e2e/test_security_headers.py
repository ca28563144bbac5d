"""Every response says nosniff; every HTML page says what it may load (Content-Security-Policy)."""

from __future__ import annotations

import httpx
import pytest

from ..support.stack import SERVICES
from .support import Buyer, Seller, Stack

pytestmark = pytest.mark.integration


def directives(policy: str) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for part in policy.split(";"):
        name, _, value = part.strip().partition(" ")
        if name:
            parsed[name] = value
    return parsed


async def test_the_invoice_document_may_load_nothing_but_its_own_styles(
    seller: Seller, http: httpx.AsyncClient
) -> None:
    buyer = Buyer.new()
    await seller.knows(buyer)
    order = await seller.receives_order(buyer)
    assert (await seller.accept(order["order_id"])).status_code == 200
    invoice = await seller.invoice_and_confirm(order["order_id"])

    for accept in ("text/html", "application/pdf"):
        document = await http.get(invoice["url"], headers={**seller.headers, "Accept": accept})
        assert document.status_code == 200
        assert document.headers["x-content-type-options"] == "nosniff"
    html = await http.get(invoice["url"], headers=seller.headers)
    policy = directives(html.headers["content-security-policy"])
    assert policy["default-src"] == "'none'"
    assert policy["style-src"] == "'unsafe-inline'"  # the document's one <style> block
    assert "script-src" not in policy
    assert policy["frame-ancestors"] == "'none'"


@pytest.mark.parametrize("service", [*SERVICES, "sandbox"])
async def test_every_service_sends_nosniff_and_a_policy_for_its_docs_page(
    stack: Stack, http: httpx.AsyncClient, service: str
) -> None:
    base = stack.url(service)
    for path in ("/healthz", "/metrics", "/openapi.json", "/v1/nothing-here"):
        response = await http.get(base + path)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert "content-security-policy" not in response.headers, path  # not HTML
    docs = await http.get(base + "/docs")
    assert docs.status_code == 200
    assert docs.headers["x-content-type-options"] == "nosniff"
    policy = directives(docs.headers["content-security-policy"])
    assert policy["default-src"] == "'none'"
    assert "https://cdn.jsdelivr.net" in policy["script-src"]
    assert policy["connect-src"] == "'self'"  # the page fetches /openapi.json, nothing more
