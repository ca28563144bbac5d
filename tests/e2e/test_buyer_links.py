"""The buyer opens "View the invoice" from the email with no login; a forged link opens nothing."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx
import pytest
from juniper_shared.buyer_links import signature

from ..support.stack import BUYER_LINK_SECRET
from .support import Buyer, Seller, error_code

pytestmark = pytest.mark.integration


def link_in(text: str) -> str:
    found = re.search(r"View the invoice: (\S+)", text)
    assert found, text
    return found.group(1)


def with_query(link: str, **params: str) -> str:
    parts = urlsplit(link)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()} | params
    return urlunsplit(parts._replace(query="&".join(f"{k}={v}" for k, v in query.items())))


async def test_the_buyer_opens_the_invoice_from_the_email_without_a_login(
    seller: Seller, http: httpx.AsyncClient
) -> None:
    buyer = Buyer.new()
    await seller.knows(buyer)
    first, second = (await seller.receives_order(buyer)), (await seller.receives_order(buyer))
    for order in (first, second):
        assert (await seller.accept(order["order_id"])).status_code == 200
    invoice = await seller.invoice_and_confirm(first["order_id"])
    other = await seller.invoice_and_confirm(second["order_id"])

    email = await seller.stack.inbox.wait_for(
        buyer.email, f"Invoice {invoice['number']} from Juniper Pottery"
    )
    link = link_in(email.text)
    assert link.startswith(invoice["url"] + "?")

    page = await http.get(link)  # no Authorization header: the buyer has no login
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert invoice["number"] in page.text
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["referrer-policy"] == "no-referrer"  # the signature stays in the URL bar
    assert page.headers["cache-control"] == "private, no-store"
    pdf = await http.get(link, headers={"Accept": "application/pdf"})
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")

    given = parse_qs(urlsplit(link).query)["signature"][0]
    tampered = given[:-1] + ("0" if given[-1] != "0" else "1")
    assert error_code(await http.get(with_query(link, signature=tampered))) == (403, "forbidden")
    later = str(int(parse_qs(urlsplit(link).query)["expires"][0]) + 86400)
    assert error_code(await http.get(with_query(link, expires=later))) == (403, "forbidden")
    for junk in ("", "soon", "9" * 30):
        assert error_code(await http.get(with_query(link, expires=junk))) == (403, "forbidden")
    # Not ASCII: refused before any route, as every query value that is not printable ASCII.
    refused = await http.get(with_query(link, expires="\u00b2"))
    assert error_code(refused) == (422, "validation_error")

    # Signed with the real secret, but its time is over.
    path = urlsplit(invoice["url"]).path
    expired = int(time.time()) - 60
    old = with_query(
        invoice["url"],
        expires=str(expired),
        signature=signature(path, expires=expired, secret=BUYER_LINK_SECRET),
    )
    assert error_code(await http.get(old)) == (403, "forbidden")

    # This invoice's signature does not open the buyer's other invoice.
    borrowed = other["url"] + "?" + urlsplit(link).query
    assert error_code(await http.get(borrowed)) == (403, "forbidden")
    # Neither a link nor a token: still a login question.
    assert error_code(await http.get(invoice["url"])) == (401, "unauthorized")
