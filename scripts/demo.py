"""`make demo`: the seller help article, step by step, against the stack `make up` started.

Each step is what the seller (or the buyer's checkout) does, and its result in plain words.
A fresh seller is used on every run, so the invoice numbers start at INV-000001.
Addresses come from the environment (defaults: `make up`'s ports, no topic prefix).
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
import warnings
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from juniper_shared.contracts.registry import ORDERS_PLACED, encode
from juniper_shared.settings import KafkaSettings
from juniper_testkit import bearer, placed_order, wait_until

ENV = os.environ.get
ORDERS = ENV("ORDERS_URL", "http://127.0.0.1:8001")
INVOICING = ENV("INVOICING_URL", "http://127.0.0.1:8002")
PAYMENTS = ENV("PAYMENTS_URL", "http://127.0.0.1:8003")
NOTIFICATIONS = ENV("NOTIFICATIONS_URL", "http://127.0.0.1:8004")
SANDBOX = ENV("CARD_PROCESSOR_URL", "http://127.0.0.1:8010")
MAILPIT = ENV("MAILPIT_URL", "http://127.0.0.1:8025")
KAFKA = ENV("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
TOPIC = ENV("KAFKA_TOPIC_PREFIX", "") + ORDERS_PLACED.name
# Orders are placed as the platform's checkout: the local stack's credentials by default.
CHECKOUT = KafkaSettings(
    kafka_bootstrap_servers=KAFKA,
    kafka_security_protocol=ENV("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),  # type: ignore[arg-type]
    kafka_sasl_username=ENV("KAFKA_SASL_USERNAME", "checkout"),
    kafka_sasl_password=ENV("KAFKA_SASL_PASSWORD", "checkout-dev-secret"),  # type: ignore[arg-type]
)
SECRET = ENV("AUTH_JWT_SECRET", "dev-only-secret")
WAIT = float(ENV("DEMO_WAIT_SECONDS", "30"))

SHIPPING = {
    "carrier": "UPS",
    "tracking_number": "1Z999AA10123456784",
    "shipped_at": datetime.now(UTC).date().isoformat(),
    "shipping_cost": "15.00",
}


# `make up` signs with the short development secret; the warning about it is noise here.
warnings.filterwarnings("ignore", message="The HMAC key is")


class DemoFailed(Exception):
    """A step did not give the result the help article promises."""


def say(text: str) -> None:
    print(text, flush=True)


def step(title: str) -> None:
    say(f"\n== {title}")


class Demo:
    def __init__(self, http: httpx.AsyncClient, producer: AIOKafkaProducer) -> None:
        self.http = http
        self.producer = producer
        self.seller_id = f"demo-seller-{uuid.uuid4().hex[:8]}"
        self.headers = bearer(self.seller_id, SECRET)

    # --- plumbing ---------------------------------------------------------------------------

    async def call(
        self, method: str, url: str, body: dict[str, Any] | None = None, *, expect: int = 200
    ) -> Any:
        response = await self.http.request(method, url, json=body, headers=self.headers)
        if response.status_code != expect:
            raise DemoFailed(f"{method} {url} answered {response.status_code}: {response.text}")
        return response.json()

    async def until(
        self,
        what: str,
        probe: Callable[[], Awaitable[Any]],
        equals: Any,
        *,
        wait: float = WAIT,
    ) -> None:
        try:
            await wait_until(probe, equals=equals, timeout=max(wait, WAIT), interval=0.3)
        except AssertionError as error:
            raise DemoFailed(f"{what}: {error}") from None

    # --- checkout, the order pages and their buttons -----------------------------------------

    def buyer(self, name: str, company: str) -> dict[str, str]:
        buyer_id = f"buyer-{uuid.uuid4().hex[:8]}"
        slug = name.split()[0].lower()
        return {
            "id": buyer_id,
            "name": name,
            "email": f"{slug}.{buyer_id}@example.com",
            "company": company,
        }

    async def place(
        self, buyer: dict[str, str], *, status: str = "pending", **extra: Any
    ) -> dict[str, Any]:
        order = placed_order(
            seller_id=self.seller_id, seller_name="Juniper Pottery", buyer=buyer, **extra
        )
        await self.producer.send_and_wait(
            TOPIC, encode(order), key=order.key().encode(), headers=[("type", order.type.encode())]
        )
        order_id = order.data.order_id
        await self.until(
            f"order {order_id} on the Orders page", lambda: self.status(order_id), status
        )
        details: dict[str, Any] = await self.call("GET", f"{ORDERS}/v1/orders/{order_id}")
        lines = ", ".join(f"{i['quantity']} x {i['name']}" for i in details["items"])
        say(
            f"Checkout placed order {order_id} from {buyer['name']} ({lines}); "
            f"the seller sees it as {details['status']}, total {details['total']} {details['currency']}"
        )
        return details

    async def status(self, order_id: str) -> str | None:
        response = await self.http.get(f"{ORDERS}/v1/orders/{order_id}", headers=self.headers)
        return response.json()["status"] if response.status_code == 200 else None

    async def row(self, order_id: str) -> dict[str, Any]:
        listing = await self.call("GET", f"{ORDERS}/v1/orders?page_size=100")
        return next(row for row in listing["items"] if row["order_id"] == order_id)

    async def accept(self, order_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        order: dict[str, Any] = await self.call(
            "POST", f"{ORDERS}/v1/orders/{order_id}/accept", body
        )
        say(f"Accepted order {order_id} -> {order['status']}")
        return order

    # --- invoices, cards, emails ------------------------------------------------------------

    async def invoice(self, order_id: str) -> dict[str, Any]:
        last: list[httpx.Response] = []

        async def drafted() -> int:
            # Invoicing hears of the approval over Kafka: the first press may come too early.
            response = await self.http.post(
                f"{INVOICING}/v1/orders/{order_id}/invoice/preview",
                json={"shipping": SHIPPING},
                headers=self.headers,
            )
            last[:] = [response]
            return response.status_code

        await self.until(f"invoice preview of {order_id}", drafted, 200)
        draft = last[0].json()
        say(
            f"Shipping tab filled ({SHIPPING['carrier']} {SHIPPING['tracking_number']}), Create Invoice -> "
            f"preview: subtotal {draft['subtotal']} + shipping {draft['shipping_cost']} = "
            f"{draft['total']} {draft['currency']}, due {draft['due_date']}"
        )
        confirmed: dict[str, Any] = await self.call(
            "POST", f"{INVOICING}/v1/invoices/{draft['invoice_id']}/confirm"
        )
        say(f"Confirmed -> invoice {confirmed['number']} {confirmed['status']}: {confirmed['url']}")
        return confirmed

    async def invoice_status(self, invoice_id: str) -> str:
        invoice = await self.call("GET", f"{INVOICING}/v1/invoices/{invoice_id}")
        return str(invoice["status"])

    async def card_outcome(self, invoice: dict[str, Any], status: str) -> None:
        await self.until(
            f"invoice {invoice['number']} {status}",
            lambda: self.invoice_status(invoice["invoice_id"]),
            status,
        )
        charges = (
            await self.http.get(
                f"{SANDBOX}/v1/charges", params={"reference": invoice["invoice_id"]}
            )
        ).json()
        made = "; ".join(
            f"{c['charge_id']} {c['amount']} {c['currency']} {c['status']}" for c in charges
        )
        say(f"Card processor charges for {invoice['number']}: {made or 'none'} -> invoice {status}")

    async def table_row(self, order_id: str, payment_status: str) -> None:
        async def shown() -> str:
            return str((await self.row(order_id))["payment_status"])

        await self.until(f"All Orders row of {order_id}", shown, payment_status)
        row = await self.row(order_id)
        link = row["invoice"]
        say(
            f"All Orders table: {order_id} {row['status']}, invoice {link['number']} ({link['url']}), "
            f"payment {row['payment_status']}"
        )

    async def email(self, address: str, subject: str) -> None:
        async def found() -> bool:
            response = await self.http.get(f"{MAILPIT}/api/v1/messages", params={"limit": 500})
            return any(
                subject in message["Subject"]
                and any(to["Address"] == address for to in message["To"] or [])
                for message in response.json()["messages"]
            )

        await self.until(f"email {subject!r} to {address}", found, True)
        say(f"Email '{subject}...' in {address}'s inbox (Mailpit {MAILPIT})")

    # --- the help article -------------------------------------------------------------------

    async def run(self) -> None:
        step(f"Seller {self.seller_id} ('Juniper Pottery') logs in to the admin portal")
        settings = await self.call("GET", f"{ORDERS}/v1/seller/settings")
        say(
            f"Buyer Access Requires Approval: {'ON' if settings['buyer_access_requires_approval'] else 'OFF'}"
        )
        ada = self.buyer("Ada Buyer", "Maple & Co")
        customer = await self.call(
            "POST",
            f"{ORDERS}/v1/customers",
            {"name": "Maple & Co", "email": ada["email"], "buyer_ids": [ada["id"]]},
            expect=201,
        )
        say(f"Maple & Co is a customer ({customer['customer_id']}), buyer {ada['name']} linked")

        step("How do I approve orders? How do I create an invoice? (credit card)")
        order = await self.place(ada)
        await self.accept(order["order_id"])
        invoice = await self.invoice(order["order_id"])
        await self.card_outcome(invoice, "paid")
        await self.table_row(order["order_id"], "paid")
        await self.email(ada["email"], f"Invoice {invoice['number']} from Juniper Pottery")
        await self.email(ada["email"], f"Receipt: invoice {invoice['number']}")

        step("How do I reject an order?")
        order = await self.place(ada)
        rejected = await self.call(
            "POST",
            f"{ORDERS}/v1/orders/{order['order_id']}/reject",
            {"reason": "out_of_stock", "message": "The glazed mugs are back in stock in May."},
        )
        say(f"Rejected order {order['order_id']} (out_of_stock) -> {rejected['status']}")
        await self.email(
            ada["email"], f"Your order {order['order_id']} from Juniper Pottery was declined"
        )

        step("How do I split an order? How do I update quantities? How do I delete an item?")
        items = [
            {"sku": "MUG-1", "name": "Stoneware mug", "unit_price": "12.50", "quantity": 4},
            {"sku": "TEA-2", "name": "Green tea tin", "unit_price": "8.00", "quantity": 2},
            {"sku": "VASE-3", "name": "Tall vase", "unit_price": "45.00", "quantity": 1},
        ]
        order = await self.place(ada, items=items)
        child = await self.call(
            "POST",
            f"{ORDERS}/v1/orders/{order['order_id']}/split",
            {"line_ids": ["L2", "L3"]},
            expect=201,
        )
        say(
            f"Split the tea and the vase from {order['order_id']} -> new order {child['order_id']} ({child['status']}, total {child['total']})"
        )
        changed = await self.call(
            "PATCH",
            f"{ORDERS}/v1/orders/{child['order_id']}/items",
            {"items": [{"line_id": "L2", "quantity": 5}]},
        )
        say(
            f"Updated the tea to 5 tins on {child['order_id']} -> subtotal {changed['subtotal']}, total {changed['total']}"
        )
        trimmed = await self.call(
            "POST", f"{ORDERS}/v1/orders/{child['order_id']}/items/remove", {"line_ids": ["L3"]}
        )
        say(f"Deleted the vase from {child['order_id']} -> total {trimmed['total']}")
        for order_id in (order["order_id"], child["order_id"]):
            await self.accept(order_id)
        for order_id in (order["order_id"], child["order_id"]):
            invoice = await self.invoice(order_id)
            await self.card_outcome(invoice, "paid")

        step("A note for ungated brands: a buyer with no relationship yet")
        await self.call(
            "PUT", f"{ORDERS}/v1/seller/settings", {"buyer_access_requires_approval": False}
        )
        say("Buyer Access Requires Approval switched OFF")
        grace = self.buyer("Grace Newcomer", "Harbour Goods")
        order = await self.place(grace)
        refused = await self.http.post(
            f"{ORDERS}/v1/orders/{order['order_id']}/accept", headers=self.headers
        )
        say(
            f"Accept without a customer -> {refused.status_code} {refused.json()['error']['code']} (the portal asks: new customer or existing?)"
        )
        accepted = await self.accept(
            order["order_id"],
            {"customer": {"create": {"name": "Harbour Goods", "email": grace["email"]}}},
        )
        say(
            f"... with a new customer 'Harbour Goods' -> {accepted['status']}, customer {accepted['customer_id']}"
        )
        ben = self.buyer("Ben Colleague", "Maple & Co")
        order = await self.place(ben)
        accepted = await self.accept(
            order["order_id"], {"customer": {"associate": customer["customer_id"]}}
        )
        say(
            f"... {ben['name']} associated with the existing customer Maple & Co -> {accepted['status']}"
        )
        await self.call(
            "PUT", f"{ORDERS}/v1/seller/settings", {"buyer_access_requires_approval": True}
        )
        stranger = self.buyer("Sam Stranger", "Unknown Traders")
        say("Buyer Access Requires Approval switched back ON; an unknown buyer orders:")
        order = await self.place(stranger, status="rejected")
        say(f"Order {order['order_id']} was rejected on arrival: {order['rejection']['reason']}")
        await self.email(
            stranger["email"], f"Your order {order['order_id']} from Juniper Pottery was declined"
        )

        step("A note on credit cards: the payment failed, the seller retries")
        card = {
            "type": "credit_card",
            "card_token": "tok_decline_once",
            "brand": "visa",
            "last4": "0341",
        }
        order = await self.place(ada, payment_method=card)
        await self.accept(order["order_id"])
        invoice = await self.invoice(order["order_id"])
        await self.card_outcome(invoice, "payment_failed")
        await self.table_row(order["order_id"], "failed")
        await self.email(
            ada["email"],
            f"Payment for invoice {invoice['number']} from Juniper Pottery did not go through",
        )
        retry = await self.call(
            "POST", f"{PAYMENTS}/v1/invoices/{invoice['invoice_id']}/payment/retry", expect=202
        )
        say(f"Retry payment -> attempt {retry['attempt']} {retry['status']}")
        await self.card_outcome(invoice, "paid")
        await self.table_row(order["order_id"], "paid")

        step("Cancelling an order after accepting it")
        order = await self.place(ada)
        await self.accept(order["order_id"])
        cancelled = await self.call(
            "POST",
            f"{ORDERS}/v1/orders/{order['order_id']}/cancel",
            {"message": "The kiln broke; sorry."},
        )
        say(f"Cancelled order {order['order_id']} -> {cancelled['status']}")
        await self.email(
            ada["email"], f"Your order {order['order_id']} from Juniper Pottery was cancelled"
        )

        step("An order the seller never answers expires")
        settings = await self.call(
            "PUT", f"{ORDERS}/v1/seller/settings", {"pending_order_expiry_days": 1}
        )
        say(f"Pending orders expire after {settings['pending_order_expiry_days']} day(s)")
        order = placed_order(
            seller_id=self.seller_id,
            seller_name="Juniper Pottery",
            buyer=ada,
            placed_at=(datetime.now(UTC) - timedelta(hours=25)).isoformat(),
        )
        await self.producer.send_and_wait(
            TOPIC, encode(order), key=order.key().encode(), headers=[("type", order.type.encode())]
        )
        order_id = order.data.order_id
        say(f"Checkout placed order {order_id} from {ada['name']} 25 hours ago; nobody answers it")
        # The sweep runs every EXPIRY_SWEEP_SECONDS (make up: 5 s; the default is 60 s).
        await self.until(
            f"order {order_id} expired", lambda: self.status(order_id), "expired", wait=90
        )
        say(
            f"All Orders table, filter 'expired': {order_id} {(await self.row(order_id))['status']}"
        )
        await self.email(
            ada["email"], f"Your order {order_id} from Juniper Pottery was not accepted in time"
        )

        step("Done")
        listing = await self.call("GET", f"{ORDERS}/v1/orders?page_size=100")
        say(f"All Orders table of {self.seller_id}: {listing['total_count']} orders")
        for row in listing["items"]:
            link = row["invoice"]["number"] if row["invoice"] else "-"
            say(
                f"  {row['order_id']:<22} {row['status']:<9} {row['total']:>8} {row['currency']}  invoice {link:<10} payment {row['payment_status']}"
            )


async def ready(http: httpx.AsyncClient) -> list[str]:
    missing = []
    for name, url in (
        ("orders", f"{ORDERS}/readyz"),
        ("invoicing", f"{INVOICING}/readyz"),
        ("payments", f"{PAYMENTS}/readyz"),
        ("notifications", f"{NOTIFICATIONS}/readyz"),
        ("card sandbox", f"{SANDBOX}/healthz"),
        ("Mailpit", f"{MAILPIT}/api/v1/messages?limit=1"),
    ):
        try:
            ok = (await http.get(url, timeout=3)).status_code == 200
        except httpx.TransportError:
            ok = False
        if not ok:
            missing.append(f"{name} ({url})")
    return missing


async def main() -> int:
    async with httpx.AsyncClient(timeout=15) as http:
        missing = await ready(http)
        if missing:
            say("Not running: " + ", ".join(missing) + ". Start the stack with `make up` first.")
            return 1
        producer = AIOKafkaProducer(**CHECKOUT.kafka_client_options(), enable_idempotence=True)
        await producer.start()
        try:
            await Demo(http, producer).run()
        except DemoFailed as error:
            say(f"\nDEMO FAILED: {error}")
            return 1
        finally:
            await producer.stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
