"""The seller's invoice steps: shipping details -> preview -> confirm, and the document."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import httpx
import pytest
from juniper_shared.metrics import DB_COMMANDS
from juniper_testkit import bearer, wait_until
from pymongo import AsyncMongoClient
from pypdf import PdfReader

from .support import SHIPPING, Invoicing, accepted, snapshot, updated

pytestmark = pytest.mark.integration


async def test_preview_shows_the_draft_and_previewing_again_replaces_it(
    service: Invoicing, unique: str
) -> None:
    order_id = f"ord-{unique}"
    await service.publish_orders([accepted(snapshot(order_id))])
    draft = await service.until_previewable(order_id)
    assert draft["invoice_id"] == f"inv-{order_id}"
    assert (draft["status"], draft["number"], draft["payment_status"]) == ("draft", None, "none")
    assert (draft["subtotal"], draft["shipping_cost"], draft["total"]) == (
        "66.00",
        "15.00",
        "81.00",
    )
    assert draft["currency"] == "USD"
    assert draft["due_date"] == "2026-11-27"  # a card is due on issue
    assert draft["payment_method"] == {"type": "credit_card", "brand": "visa", "last4": "4242"}
    assert draft["shipping"]["carrier"] == "UPS"
    assert draft["buyer"]["name"] == "Ada Buyer"
    assert draft["seller_id"] == "seller-1"

    again = await service.preview(order_id, shipping_cost="20.00", carrier="FedEx")
    assert again.status_code == 200
    assert again.json()["invoice_id"] == draft["invoice_id"]
    assert (again.json()["total"], again.json()["shipping"]["carrier"]) == ("86.00", "FedEx")
    listed = await service.http.get(
        "/v1/invoices", params={"order_id": order_id}, headers=bearer("seller-1")
    )
    assert [item["total"] for item in listed.json()["items"]] == ["86.00"]


async def test_net_terms_are_due_days_after_shipping(service: Invoicing, unique: str) -> None:
    order_id = f"ord-{unique}"
    net_30 = snapshot(order_id, payment_method={"type": "net_terms", "days": 30})
    await service.publish_orders([accepted(net_30)])
    draft = await service.until_previewable(order_id)
    assert draft["due_date"] == "2026-12-27"


async def test_preview_refuses_bad_input_and_other_sellers(service: Invoicing, unique: str) -> None:
    order_id = f"ord-{unique}"
    await service.publish_orders([accepted(snapshot(order_id))])
    await service.until_previewable(order_id)

    too_fine = await service.preview(order_id, shipping_cost="1.005")
    assert (too_fine.status_code, too_fine.json()["error"]["code"]) == (422, "validation_error")
    no_date = await service.http.post(
        f"/v1/orders/{order_id}/invoice/preview",
        json={"shipping": {"carrier": "UPS", "tracking_number": "1Z", "shipping_cost": "1.00"}},
        headers=bearer("seller-1"),
    )
    assert (no_date.status_code, no_date.json()["error"]["code"]) == (422, "validation_error")
    unknown = await service.preview(f"nope-{unique}")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")
    foreign = await service.preview(order_id, seller_id="seller-2")
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (404, "not_found")
    anonymous = await service.http.post(f"/v1/orders/{order_id}/invoice/preview", json={})
    assert (anonymous.status_code, anonymous.json()["error"]["code"]) == (401, "unauthorized")


async def test_confirm_issues_a_number_once_and_publishes_invoice_issued(
    service: Invoicing, unique: str
) -> None:
    order_id = f"ord-{unique}"
    await service.publish_orders([accepted(snapshot(order_id))])
    draft = await service.until_previewable(order_id)
    invoice_id = draft["invoice_id"]

    foreign = await service.confirm(invoice_id, seller_id="seller-2")
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (404, "not_found")

    confirmed = await service.confirm(invoice_id)
    assert confirmed.status_code == 200
    body = confirmed.json()
    assert (body["invoice_id"], body["number"], body["status"]) == (
        invoice_id,
        "INV-000001",
        "issued",
    )
    assert body["url"] == f"{service.base_url}/v1/invoices/{invoice_id}/document"
    assert (await service.confirm(invoice_id)).json() == body

    shown = (await service.invoice(invoice_id)).json()
    assert (shown["status"], shown["payment_status"], shown["number"]) == (
        "issued",
        "pending",
        "INV-000001",
    )
    late = await service.preview(order_id)
    assert (late.status_code, late.json()["error"]["code"]) == (409, "order_not_invoiceable")
    assert (await service.invoice(invoice_id, seller_id="seller-2")).status_code == 404

    events = await service.invoice_events(until=lambda found: len(found) >= 1)
    issued = [event for event in events if event["type"] == "invoice.issued"]
    assert len(issued) == 1
    data = issued[0]["data"]
    assert (data["number"], data["order_id"], data["seller_id"]) == (
        "INV-000001",
        order_id,
        "seller-1",
    )
    assert (data["amount"], data["subtotal"], data["shipping_cost"]) == ("81.00", "66.00", "15.00")
    assert data["payment_method"] == {"type": "credit_card", "brand": "visa", "last4": "4242"}
    assert (data["url"], data["due_date"], data["seller_name"]) == (
        body["url"],
        "2026-11-27",
        "Juniper Pottery",
    )
    assert data["buyer"]["email"] == "ada@example.com"


async def confirm_with_key(service: Invoicing, unique: str) -> tuple[str, httpx.Response]:
    """A new order's draft confirmed with an Idempotency-Key: the confirm URL and its answer."""
    order_id = f"ord-{unique}"
    await service.publish_orders([accepted(snapshot(order_id))])
    invoice_id = (await service.until_previewable(order_id))["invoice_id"]
    url = f"/v1/invoices/{invoice_id}/confirm"
    return url, await service.http.post(url, headers=confirm_headers(unique))


def confirm_headers(unique: str) -> dict[str, str]:
    return {**bearer("seller-1"), "Idempotency-Key": f"confirm-{unique}"}


async def test_a_confirm_retried_with_its_idempotency_key_answers_the_same(
    service: Invoicing, unique: str
) -> None:
    url, first = await confirm_with_key(service, unique)
    replay = await service.http.post(url, headers=confirm_headers(unique))
    assert first.status_code == replay.status_code == 200
    assert replay.json() == first.json()
    assert replay.headers.get("Idempotent-Replayed") == "true"


async def test_a_preview_retried_with_its_key_answers_its_first_draft_and_changes_nothing(
    service: Invoicing, unique: str
) -> None:
    order_id = f"ord-{unique}"
    await service.publish_orders([accepted(snapshot(order_id))])
    await service.until_previewable(order_id)
    url = f"/v1/orders/{order_id}/invoice/preview"
    keyed = {**bearer("seller-1"), "Idempotency-Key": f"preview-{unique}"}
    body = {"shipping": {**SHIPPING, "shipping_cost": "20.00"}}
    first = await service.http.post(url, headers=keyed, json=body)
    redrafted = await service.preview(order_id, shipping_cost="30.00")
    retry = await service.http.post(url, headers=keyed, json=body)
    assert first.status_code == redrafted.status_code == retry.status_code == 200
    assert retry.json() == first.json()
    assert retry.headers.get("Idempotent-Replayed") == "true"
    now = await service.invoice(first.json()["invoice_id"])
    assert now.json()["shipping_cost"] == "30.00"  # the retry did not draft again


async def test_a_confirm_whose_first_response_was_lost_answers_the_invoice_as_it_is(
    service: Invoicing,
    unique: str,
    mongo_client: AsyncMongoClient[dict[str, Any]],
    database_name: str,
) -> None:
    url, first = await confirm_with_key(service, unique)
    assert first.status_code == 200
    # As if the process died after the invoice's write and before storing the response (it is
    # stored behind the answer: wait for it, then take it away).
    stored = mongo_client[database_name]["idempotency_keys"]

    async def confirm_response_stored() -> bool:
        return any('"issued"' in document["body"] for document in await stored.find({}).to_list())

    await wait_until(confirm_response_stored, equals=True, timeout=10)
    assert (await stored.delete_many({})).deleted_count >= 1
    retry = await service.http.post(url, headers=confirm_headers(unique))
    assert retry.status_code == 200
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert retry.json() == first.json()  # still issued, with the same number


async def test_an_order_changed_after_the_preview_must_be_previewed_again(
    service: Invoicing, unique: str
) -> None:
    order_id = f"ord-{unique}"
    await service.publish_orders([accepted(snapshot(order_id, version=2))])
    invoice_id = (await service.until_previewable(order_id))["invoice_id"]
    changed = snapshot(order_id, version=3, items=[("MUG-1", "Stoneware mug", "12.50", 1)])
    marker = f"mark-{unique}"
    await service.publish_orders([accepted(changed), accepted(snapshot(marker))], key=order_id)
    await service.until_previewable(marker)

    stale = await service.confirm(invoice_id)
    assert stale.json()["error"]["code"] == "invalid_state"
    assert (await service.preview(order_id)).json()["total"] == "27.50"
    assert (await service.confirm(invoice_id)).json()["number"] == "INV-000001"


async def test_the_invoice_document_prints_as_html_and_as_a_real_pdf(
    service: Invoicing, unique: str
) -> None:
    order_id = f"ord-{unique}"
    await service.publish_orders([accepted(snapshot(order_id))])
    invoice_id = (await service.until_previewable(order_id))["invoice_id"]
    await service.preview(order_id, tracking_number="TRACK<b>42")
    await service.confirm(invoice_id)
    url = f"/v1/invoices/{invoice_id}/document"

    html = await service.http.get(url, headers=bearer("seller-1"))
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert "INV-000001" in html.text
    assert "TRACK&lt;b&gt;42" in html.text
    assert "TRACK<b>42" not in html.text

    pdf = await service.http.get(url, headers={**bearer("seller-1"), "Accept": "application/pdf"})
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    for expected in (
        "Invoice INV-000001",
        "Juniper Pottery",
        "Ada Buyer",
        "12 Harbour St",
        "Stoneware mug",
        "Green tea tin",
        "USD 66.00",
        "USD 15.00",
        "USD 81.00",
        "Due: 2026-11-27",
        "Payment: pending",
        "Visa card ending 4242",
        "TRACK<b>42",
    ):
        assert expected in text, expected
    assert (await service.http.get(url, headers=bearer("seller-2"))).status_code == 404


async def order_at_version_2(service: Invoicing, unique: str) -> str:
    """An approved order invoicing has stored at version 2; returns its id."""
    order_id = f"ord-{unique}"
    await service.publish_orders([accepted(snapshot(order_id, version=2))])
    await service.until_previewable(order_id)
    return order_id


async def edit_to_version_3(service: Invoicing, order_id: str) -> None:
    """The seller's quantity change (one mug, subtotal 12.50) arrives on `orders.events`."""
    edited = snapshot(order_id, version=3, items=[("MUG-1", "Stoneware mug", "12.50", 1)])
    await service.publish_orders([updated(edited)])


async def preview_at(service: Invoicing, order_id: str, version: int) -> httpx.Response:
    return await service.http.post(
        f"/v1/orders/{order_id}/invoice/preview",
        json={"shipping": {**SHIPPING}, "order_version": version},
        headers=bearer("seller-1"),
    )


async def test_a_preview_naming_the_order_version_never_drafts_an_older_one(
    service: Invoicing, unique: str
) -> None:
    """The seller changed a quantity (version 3) a moment ago; invoicing has only heard of 2."""
    order_id = await order_at_version_2(service, unique)

    ahead = await preview_at(service, order_id, 3)
    assert (ahead.status_code, ahead.json()["error"]["code"]) == (409, "order_not_current")

    await edit_to_version_3(service, order_id)
    caught_up = await preview_at(service, order_id, 3)
    # Invoicing waits briefly for the update to arrive, so the draft has the edit.
    if caught_up.status_code == 409:  # the update was still on its way: the portal retries
        caught_up = await preview_at(service, order_id, 3)
    assert caught_up.status_code == 200, caught_up.text
    assert caught_up.json()["subtotal"] == "12.50"


async def test_a_preview_ahead_of_the_read_model_waits_for_the_consumer_without_reading(
    service: Invoicing, unique: str
) -> None:
    """The seller's edit (version 3) reaches invoicing just after the preview naming it."""
    order_id = await order_at_version_2(service, unique)
    reads_before = DB_COMMANDS.labels("find", "orders")._value.get()

    preview = asyncio.create_task(preview_at(service, order_id, 3))
    await asyncio.sleep(0.05)
    await edit_to_version_3(service, order_id)
    drafted = await preview

    assert drafted.status_code == 200, drafted.text
    assert drafted.json()["subtotal"] == "12.50"
    # This process's consumer handed the version over: the older one stored was never read.
    assert DB_COMMANDS.labels("find", "orders")._value.get() == reads_before


async def test_a_preview_right_after_the_accept_waits_for_the_order_to_reach_invoicing(
    service: Invoicing, unique: str
) -> None:
    """The portal previews the moment the seller accepted: invoicing has not heard of the
    order yet. It waits for it rather than answering that there is no such order."""
    order_id = f"ord-{unique}"
    preview = asyncio.create_task(preview_at(service, order_id, 2))
    await asyncio.sleep(0.05)
    await service.publish_orders([accepted(snapshot(order_id, version=2))])
    drafted = await preview

    assert drafted.status_code == 200, drafted.text
    assert drafted.json()["order_id"] == order_id


async def test_amounts_in_range_adding_up_past_the_cap_are_refused_and_nothing_is_stored(
    service: Invoicing, unique: str
) -> None:
    """Shipping of 999,999,999.99 is in range; with the order's lines the total is not."""
    poisoned, fine = f"ord-{unique}-a", f"ord-{unique}-b"
    await service.publish_orders([accepted(snapshot(poisoned)), accepted(snapshot(fine))])

    async def refused() -> int:
        return (await service.preview(poisoned, shipping_cost="999999999.99")).status_code

    await wait_until(refused, equals=422)
    answer = await service.preview(poisoned, shipping_cost="999999999.99")
    assert answer.json()["error"]["code"] == "validation_error"
    assert "total" in answer.json()["error"]["message"]
    # Nothing stored: no draft to read, list, print or confirm.
    invoice_id = f"inv-{poisoned}"
    assert (await service.invoice(invoice_id)).status_code == 404
    listed = await service.http.get(
        "/v1/invoices", params={"order_id": poisoned}, headers=bearer("seller-1")
    )
    assert (listed.status_code, listed.json()["items"]) == (200, [])
    assert (await service.confirm(invoice_id)).status_code == 404

    # The seller's numbering is untouched: the next invoices are numbered from 1, and the
    # refused one is issued only when the seller previews and confirms it with a valid cost.
    draft = await service.until_previewable(fine)
    confirmed = await service.confirm(draft["invoice_id"])
    assert (confirmed.status_code, confirmed.json()["number"]) == (200, "INV-000001")
    again = await service.preview(poisoned, shipping_cost="15.00")
    assert again.status_code == 200
    assert (await service.confirm(invoice_id)).json()["number"] == "INV-000002"
    events = await service.invoice_events(until=lambda found: len(found) >= 2)
    issued = {event["data"]["order_id"]: event["data"]["amount"] for event in events}
    assert issued == {fine: "81.00", poisoned: "81.00"}


async def test_a_draft_stored_past_the_cap_is_never_issued_and_blocks_no_other_confirm(
    service: Invoicing,
    unique: str,
    mongo_client: AsyncMongoClient[dict[str, Any]],
    database_name: str,
) -> None:
    """A draft an older version stored with shipping of 999,999,999.99 (before previews were
    checked): it reads, its confirm is refused with no number taken, the seller's other
    invoices are numbered from 1, and it is issued only when the seller previews it again."""
    poisoned, fine = f"ord-{unique}-a", f"ord-{unique}-b"
    await service.publish_orders([accepted(snapshot(poisoned)), accepted(snapshot(fine))])
    invoice_id = (await service.until_previewable(poisoned))["invoice_id"]
    # As another process of the older version would have written it (its version bumped).
    stored = await mongo_client[database_name]["invoices"].update_one(
        {"_id": invoice_id},
        {"$set": {"shipping.shipping_cost": 99_999_999_999}, "$inc": {"version": 1}},
    )
    assert stored.modified_count == 1

    shown = await service.invoice(invoice_id)
    assert (shown.status_code, shown.json()["total"]) == (200, "1000000065.99")
    listed = await service.http.get(
        "/v1/invoices", params={"order_id": poisoned}, headers=bearer("seller-1")
    )
    assert listed.status_code == 200
    refused = await service.confirm(invoice_id)
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "validation_error")
    assert "total" in refused.json()["error"]["message"]

    other = (await service.until_previewable(fine))["invoice_id"]
    confirmed = await service.confirm(other)
    assert (confirmed.status_code, confirmed.json()["number"]) == (200, "INV-000001")
    assert (await service.invoice(invoice_id)).json()["status"] == "draft"

    assert (await service.preview(poisoned, shipping_cost="15.00")).status_code == 200
    assert (await service.confirm(invoice_id)).json()["number"] == "INV-000002"
    events = await service.invoice_events(until=lambda found: len(found) >= 2)
    assert sorted(event["data"]["number"] for event in events) == ["INV-000001", "INV-000002"]
