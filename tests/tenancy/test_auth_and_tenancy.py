"""Every endpoint of every service, derived from the apps' routes: bad tokens get 401 with the
contract body; seller A's token on seller B's order, customer, invoice, payment or notification
gets 404 (or does not list it), for reads and writes alike, and nothing of B's changes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Route

from ..fuzz.stack import JWT_SECRET, SERVICES, Stack, describe_apps, running_stack
from ..fuzz.support import accept, client, eventually, placed, produce, record_of, run, ungate

pytestmark = pytest.mark.integration

SELLER_A = "seller-tenant-a"
SELLER_B = "seller-tenant-b"
SHIPPING = {
    "carrier": "UPS",
    "tracking_number": "1Z",
    "shipped_at": "2026-01-02",
    "shipping_cost": "1.00",
}

PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("GET", "/openapi.json"),
}
"""Public by design on every service: health, metrics and the API documents."""

# Every protected endpoint: the request seller A makes with seller B's ids, and what A sees.
# "404": not found. "absent": a list that does not show B's resource. "empty": an empty list
# (notifications' documented answer for another seller's order).
PROTECTED: dict[tuple[str, str, str], tuple[dict[str, Any], str]] = {
    ("orders", "GET", "/v1/orders"): ({"params": {"page_size": 100}}, "absent"),
    ("orders", "GET", "/v1/orders/{order_id}"): ({}, "404"),
    ("orders", "POST", "/v1/orders/{order_id}/accept"): ({}, "404"),
    ("orders", "POST", "/v1/orders/{order_id}/reject"): ({"json": {"reason": "other"}}, "404"),
    ("orders", "POST", "/v1/orders/{order_id}/split"): ({"json": {"line_ids": ["l1"]}}, "404"),
    ("orders", "PATCH", "/v1/orders/{order_id}/items"): (
        {"json": {"items": [{"line_id": "l1", "quantity": 9}]}},
        "404",
    ),
    ("orders", "POST", "/v1/orders/{order_id}/items/remove"): (
        {"json": {"line_ids": ["l1"]}},
        "404",
    ),
    ("orders", "POST", "/v1/orders/{order_id}/cancel"): (
        {"json": {"message": "x"}},
        "404:approved",
    ),
    ("orders", "GET", "/v1/seller/settings"): ({}, "own"),
    ("orders", "PUT", "/v1/seller/settings"): (
        {"json": {"buyer_access_requires_approval": True}},
        "own",
    ),
    ("orders", "GET", "/v1/customers"): ({}, "absent"),
    ("orders", "POST", "/v1/customers"): (
        {"json": {"name": "A's", "email": "a@example.com", "buyer_ids": ["buyer-1"]}},
        "own",
    ),
    ("orders", "GET", "/v1/customers/{customer_id}"): ({}, "404"),
    ("invoicing", "POST", "/v1/orders/{order_id}/invoice/preview"): (
        {"json": {"shipping": SHIPPING}},
        "404:approved",
    ),
    ("invoicing", "POST", "/v1/invoices/{invoice_id}/confirm"): ({}, "404:draft"),
    ("invoicing", "GET", "/v1/invoices/{invoice_id}"): ({}, "404"),
    ("invoicing", "GET", "/v1/invoices"): ({"params": {"order_id": "{order_id}"}}, "absent"),
    ("invoicing", "GET", "/v1/invoices/{invoice_id}/document"): ({}, "404"),
    ("payments", "GET", "/v1/payments"): ({"params": {"invoice_id": "{invoice_id}"}}, "404"),
    ("payments", "POST", "/v1/invoices/{invoice_id}/payment/retry"): ({}, "404"),
    ("notifications", "GET", "/v1/notifications"): (
        {"params": {"order_id": "{order_id}"}},
        "empty",
    ),
}


def _routes(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every operation in the app's OpenAPI document, plus the routes that
    document does not list (the documents and their UIs)."""
    found: set[tuple[str, str]] = set()
    for path, operations in app.openapi()["paths"].items():
        found |= {(method.upper(), path) for method in operations}
    for route in app.routes:
        if isinstance(route, Route) and not isinstance(route, APIRoute):
            found |= {(method, route.path) for method in (route.methods or set()) - {"HEAD"}}
    return found


def endpoints() -> set[tuple[str, str, str]]:
    """(service, method, path) of every endpoint of every service."""
    routes = describe_apps(_routes)
    return {(service, method, path) for service, found in routes.items() for method, path in found}


ENDPOINTS = endpoints()


def test_every_endpoint_is_in_the_table() -> None:
    public = {(service, method, path) for service in SERVICES for method, path in PUBLIC}
    assert ENDPOINTS - public == set(PROTECTED), "add the new endpoint to PROTECTED or PUBLIC"
    assert public <= ENDPOINTS


def _token(claims: dict[str, Any], *, secret: str = JWT_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


NOW = int(time.time())
BAD_CREDENTIALS = {
    "no token": {},
    "malformed token": {"Authorization": "Bearer not.a.jwt"},
    "not a bearer": {"Authorization": "Basic c2VsbGVyOnB3"},
    "wrong signature": {
        "Authorization": "Bearer "
        + _token({"seller_id": SELLER_B, "exp": NOW + 3600}, secret="another-secret")
    },
    "alg none": {
        "Authorization": "Bearer "
        + jwt.encode({"seller_id": SELLER_B, "exp": NOW + 3600}, None, algorithm="none")
    },
    "expired": {"Authorization": "Bearer " + _token({"seller_id": SELLER_B, "exp": NOW - 60})},
    "no seller_id": {"Authorization": "Bearer " + _token({"sub": SELLER_B, "exp": NOW + 3600})},
    "empty seller_id": {"Authorization": "Bearer " + _token({"seller_id": "", "exp": NOW + 3600})},
    "no exp": {"Authorization": "Bearer " + _token({"seller_id": SELLER_B, "iat": NOW})},
    "lifetime over a day": {
        "Authorization": "Bearer "
        + _token({"seller_id": SELLER_B, "iat": NOW, "exp": NOW + 86_401})
    },
    "exp over a day away, no iat": {
        "Authorization": "Bearer " + _token({"seller_id": SELLER_B, "exp": NOW + 2 * 86_400})
    },
    "exp not a number": {
        "Authorization": "Bearer " + _token({"seller_id": SELLER_B, "exp": "tomorrow"})
    },
}
BAD_SELLER_IDS = [
    "$where",
    f"{SELLER_B} ",
    f" {SELLER_B}",
    "seller\x00b",
    "seller:b",
    "seller.b",
    "seller_b",
    "Seller-B",
    "-seller-b",
    "s" * 64,
    "sellér",
    "seller\nb",
    "\u0661\u0662\u0663",
    "{'$ne': 1}",
]
"""`seller_id` claims outside `^[a-z0-9][a-z0-9-]{0,62}$`: each is refused with 401."""
for seller_id in BAD_SELLER_IDS:
    BAD_CREDENTIALS[f"seller_id {seller_id!r}"] = {
        "Authorization": "Bearer " + _token({"seller_id": seller_id, "exp": NOW + 3600})
    }
BAD_CREDENTIALS["seller_id not a string"] = {
    "Authorization": "Bearer " + _token({"seller_id": ["seller-b"], "exp": NOW + 3600})
}


@pytest.fixture(scope="module")
def stack(infra: Any) -> Iterator[Stack]:
    with running_stack(infra) as running:
        yield running


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as session:
        yield session


@pytest.fixture(scope="module")
def b_resources(stack: Stack) -> dict[str, str]:
    """Seller B's world: a pending order, an approved one with a draft invoice, and an invoiced
    one whose card payment failed (so a retry, a cancel or a confirm would act)."""
    return run(_seller_b(stack))


async def _seller_b(stack: Stack) -> dict[str, str]:
    await ungate(stack, SELLER_B)
    pending, drafted, invoiced = (
        placed(SELLER_B),
        placed(SELLER_B),
        placed(SELLER_B, token="tok_declined"),
    )
    await produce(
        stack.kafka_bootstrap,
        stack.topic("orders", "orders.placed"),
        [record_of(o) for o in (pending, drafted, invoiced)],
    )
    ids = {"order_id": pending.data.order_id, "approved_order_id": drafted.data.order_id}
    async with (
        client(stack, "orders", SELLER_B) as orders,
        client(stack, "invoicing", SELLER_B) as invoicing,
        client(stack, "payments", SELLER_B) as payments,
        client(stack, "notifications", SELLER_B) as notifications,
    ):
        for order in (drafted, invoiced):
            assert (await accept(orders, order.data.order_id)).status_code == 200
        await eventually(lambda: _status(orders, f"/v1/orders/{pending.data.order_id}"), 200)
        customers = (await orders.get("/v1/customers")).json()["items"]
        ids["customer_id"] = customers[0]["customer_id"]
        for order in (drafted, invoiced):

            async def previewed(order_id: str = order.data.order_id) -> int:
                answer = await invoicing.post(
                    f"/v1/orders/{order_id}/invoice/preview", json={"shipping": SHIPPING}
                )
                ids[order_id] = answer.json().get("invoice_id", "")
                return answer.status_code

            await eventually(previewed, 200)
        ids["draft_invoice_id"] = ids.pop(drafted.data.order_id)
        ids["invoice_id"] = ids.pop(invoiced.data.order_id)
        assert (
            await invoicing.post(f"/v1/invoices/{ids['invoice_id']}/confirm")
        ).status_code == 200

        async def payment() -> str | None:
            answer = await payments.get("/v1/payments", params={"invoice_id": ids["invoice_id"]})
            return answer.json()["status"] if answer.status_code == 200 else None

        await eventually(payment, "failed")
        ids["invoiced_order_id"] = invoiced.data.order_id

        async def emails() -> bool:
            answer = await notifications.get(
                "/v1/notifications", params={"order_id": invoiced.data.order_id}
            )
            templates = {item["template"] for item in answer.json()["items"]}
            return {"order_accepted", "invoice_issued", "invoice_payment_failed"} <= templates

        # Every email of B's orders is in, and orders shows the failed payment (it follows
        # invoices.events), before the snapshot that must not change.
        await eventually(emails, True)

        async def orders_payment_status() -> str:
            answer = await orders.get(f"/v1/orders/{invoiced.data.order_id}")
            return str(answer.json()["payment_status"])

        await eventually(orders_payment_status, "failed")
    return ids


async def _status(http: httpx.AsyncClient, path: str) -> int:
    return (await http.get(path)).status_code


def _request(
    service_path: str, options: dict[str, Any], ids: dict[str, str], expect: str
) -> tuple[str, dict[str, Any]]:
    values = dict(ids)
    if expect == "404:approved":
        values["order_id"] = ids["approved_order_id"]
    if expect == "404:draft":
        values["invoice_id"] = ids["draft_invoice_id"]
    path = service_path.format(**values)
    filled = dict(options)
    if "params" in filled:
        filled["params"] = {
            name: str(value).format(**values) for name, value in filled["params"].items()
        }
    return path, filled


def _snapshot_of_b(stack: Stack, http: httpx.Client, ids: dict[str, str]) -> dict[str, Any]:
    """Everything of B's that A's requests could have touched, as B sees it."""
    headers = {"Authorization": "Bearer " + _token({"seller_id": SELLER_B, "exp": NOW + 3600})}

    def get(service: str, path: str, **params: str) -> Any:
        answer = http.get(stack.urls[service] + path, params=params, headers=headers, timeout=30)
        return answer.status_code, answer.json()

    return {
        "orders": [
            get("orders", f"/v1/orders/{ids[name]}")
            for name in ("order_id", "approved_order_id", "invoiced_order_id")
        ],
        "list": get("orders", "/v1/orders", page_size="100"),
        "settings": get("orders", "/v1/seller/settings"),
        "customers": get("orders", "/v1/customers"),
        "customer": get("orders", f"/v1/customers/{ids['customer_id']}"),
        "invoices": [
            get("invoicing", f"/v1/invoices/{ids[name]}")
            for name in ("invoice_id", "draft_invoice_id")
        ],
        "payment": get("payments", "/v1/payments", invoice_id=ids["invoice_id"]),
        "notifications": get(
            "notifications", "/v1/notifications", order_id=ids["invoiced_order_id"]
        ),
    }


@pytest.mark.parametrize("credentials", list(BAD_CREDENTIALS))
def test_a_bad_token_gets_401_on_every_protected_endpoint(
    stack: Stack, http: httpx.Client, credentials: str
) -> None:
    ids = {
        "order_id": "o1",
        "approved_order_id": "o1",
        "invoice_id": "i1",
        "draft_invoice_id": "i1",
        "customer_id": "c1",
    }
    for (service, method, path), (options, expect) in PROTECTED.items():
        url, filled = _request(path, options, ids, expect)
        answer = http.request(
            method,
            stack.urls[service] + url,
            headers=BAD_CREDENTIALS[credentials],
            timeout=30,
            **filled,
        )
        assert answer.status_code == 401, (service, method, path, answer.text)
        assert answer.json()["error"]["code"] == "unauthorized", answer.text
        assert answer.json()["error"]["message"]


def test_public_endpoints_answer_without_a_token(stack: Stack, http: httpx.Client) -> None:
    for service in SERVICES:
        for method, path in sorted(PUBLIC):
            if path == "/docs/oauth2-redirect":
                continue  # a redirect target page, served as HTML like /docs
            answer = http.request(method, stack.urls[service] + path, timeout=30)
            assert answer.status_code == 200, (service, path, answer.text)


def test_another_sellers_resources_are_not_found_and_unchanged(
    stack: Stack, http: httpx.Client, b_resources: dict[str, str]
) -> None:
    before = _snapshot_of_b(stack, http, b_resources)
    a = {"Authorization": "Bearer " + _token({"seller_id": SELLER_A, "exp": NOW + 3600})}
    for (service, method, path), (options, expect) in PROTECTED.items():
        url, filled = _request(path, options, b_resources, expect)
        answer = http.request(method, stack.urls[service] + url, headers=a, timeout=30, **filled)
        where = (service, method, path, answer.text)
        if expect.startswith("404"):
            assert answer.status_code == 404, where
            assert answer.json()["error"]["code"] == "not_found", where
        elif expect == "empty":
            assert answer.status_code == 200 and answer.json() == {"items": []}, where
        elif expect == "absent":
            assert answer.status_code == 200, where
            assert not set(b_resources.values()) & _ids_in(answer.json()), where
        else:  # "own": acts on A's own settings or customers only
            assert answer.status_code in {200, 201}, where
    assert _snapshot_of_b(stack, http, b_resources) == before


def _ids_in(document: Any) -> set[str]:
    if isinstance(document, dict):
        return set().union(*(_ids_in(value) for value in document.values())) if document else set()
    if isinstance(document, list):
        return set().union(*(_ids_in(value) for value in document)) if document else set()
    return {document} if isinstance(document, str) else set()
