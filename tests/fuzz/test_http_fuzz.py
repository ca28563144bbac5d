"""Schemathesis against each service's own OpenAPI document, on real HTTP, Kafka and FerretDB.

Checks: no 5xx, bodies and content types as documented, every status code documented, and
every 4xx/5xx body is the contract's `{"error": {"code", "message"}}`. Path and query ids are
sometimes swapped for ids that exist (an order with an invoice and a payment), so the fuzzed
bodies reach the real handlers and not only the 404 branch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from juniper_testkit import bearer
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import CASES, budget
from .stack import Stack, describe_apps
from .support import (
    client,
    eventually,
    issued_invoice,
    placed,
    produce,
    record_of,
    run,
    ungate,
)

pytestmark = [
    pytest.mark.integration,
    # The services run in another thread and draw from `random` (backoff jitter) while
    # Hypothesis generates, which Hypothesis reports as if a strategy did.
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]

SELLER = "seller-fuzz"
EXAMPLES = budget(6)


def contract_error_body(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """Every 4xx/5xx answer is `{"error": {"code": "<snake_case>", "message": "..."}}`."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(
            f"{response.status_code} without a JSON body: {response.text[:200]!r}"
        ) from None
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"code", "message"}, body
    assert isinstance(error["code"], str) and error["code"].replace("_", "").isalpha(), body
    assert error["code"] == error["code"].lower(), body
    assert isinstance(error["message"], str) and error["message"], body


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    contract_error_body,
]


@pytest.fixture(scope="module")
def stack(linked_stack: Stack) -> Stack:
    return linked_stack


@pytest.fixture(scope="module")
def known(stack: Stack) -> dict[str, str]:
    """Ids that exist for the fuzzing seller: an order invoiced and paid, a customer."""
    order = placed(SELLER)

    async def seed() -> dict[str, str]:
        await ungate(stack, SELLER)
        await produce(
            stack.kafka_bootstrap, stack.topic("orders", "orders.placed"), [record_of(order)]
        )
        invoice_id = await issued_invoice(stack, order)
        async with (
            client(stack, "orders", SELLER) as orders,
            client(stack, "payments", SELLER) as payments,
        ):
            customer = await orders.post(
                "/v1/customers", json={"name": "Fuzz Co", "email": "f@example.com"}
            )
            assert customer.status_code == 201, customer.text

            async def paid() -> str | None:
                answer = await payments.get("/v1/payments", params={"invoice_id": invoice_id})
                return answer.json()["status"] if answer.status_code == 200 else None

            await eventually(paid, "succeeded")
        return {
            "order_id": order.data.order_id,
            "invoice_id": invoice_id,
            "customer_id": customer.json()["customer_id"],
        }

    KNOWN.update(run(seed()))
    return KNOWN


KNOWN: dict[str, str] = {}
"""Ids that exist, filled by the `known` fixture before the first case is generated."""


DOCUMENTS: dict[str, dict[str, Any]] = describe_apps(lambda app: app.openapi())
"""Each service's OpenAPI document, as its app serves it on /openapi.json."""


def _schema(service: str) -> Any:
    schema = schemathesis.openapi.from_dict(DOCUMENTS[service])

    def with_known(values: dict[str, Any] | None) -> Any:
        if not values:
            return st.just(values)
        swapped = {name: KNOWN.get(name, value) for name, value in values.items()}
        return st.sampled_from([values, swapped])

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
        return with_known(path_parameters)

    @schema.hook
    def flatmap_query(context: Any, query: dict[str, Any]) -> Any:
        return with_known(query)

    return schema


def test_the_fuzzed_documents_are_the_served_ones(stack: Stack) -> None:
    for service, document in DOCUMENTS.items():
        served = requests.get(f"{stack.urls[service]}/openapi.json", timeout=10).json()
        assert served == document, service


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _call(service: str, stack: Stack, session: requests.Session, case: schemathesis.Case) -> None:
    CASES[f"http {service}"] += 1
    headers = bearer(SELLER)
    case.call_and_validate(
        base_url=stack.urls[service], session=session, headers=headers, checks=CHECKS, timeout=30
    )


orders_api = _schema("orders")
invoicing_api = _schema("invoicing")
payments_api = _schema("payments")
notifications_api = _schema("notifications")


@orders_api.parametrize()
@FUZZ_SETTINGS
def test_orders_api(
    case: schemathesis.Case, stack: Stack, session: requests.Session, known: dict[str, str]
) -> None:
    _call("orders", stack, session, case)


@invoicing_api.parametrize()
@FUZZ_SETTINGS
def test_invoicing_api(
    case: schemathesis.Case, stack: Stack, session: requests.Session, known: dict[str, str]
) -> None:
    _call("invoicing", stack, session, case)


@payments_api.parametrize()
@FUZZ_SETTINGS
def test_payments_api(
    case: schemathesis.Case, stack: Stack, session: requests.Session, known: dict[str, str]
) -> None:
    _call("payments", stack, session, case)


@notifications_api.parametrize()
@FUZZ_SETTINGS
def test_notifications_api(
    case: schemathesis.Case, stack: Stack, session: requests.Session, known: dict[str, str]
) -> None:
    _call("notifications", stack, session, case)


# --- hostile ids and strings: control characters, NUL, non-ASCII, too long ---------------------

CONTROL = st.sampled_from([chr(code) for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))])
"""A C0 or C1 control character, NUL included."""


def _with(inside: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    around = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)
    return st.tuples(around, inside, around).map("".join)


HOSTILE_IDS = st.one_of(
    _with(CONTROL),
    _with(st.characters(min_codepoint=0x80, codec="utf-8", exclude_categories=["Cs"])),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=129, max_size=300),
    # Printable but longer than any id, with `$`, `{`, `/`, `%`, `..`: not found or refused.
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=65, max_size=128),
)
"""Ids no endpoint knows: each gets 404 or 422 and the contract's body, never a 5xx."""

ID_PARAMETERS = [
    (service, method.upper(), path, parameter["name"], parameter["in"])
    for service, document in DOCUMENTS.items()
    for path, operations in document["paths"].items()
    for method, operation in operations.items()
    for parameter in operation.get("parameters", [])
    if parameter["in"] in {"path", "query"} and parameter["name"].endswith("_id")
]


HOSTILE_SETTINGS = settings(FUZZ_SETTINGS, max_examples=budget(60))
"""One request per example: cheap enough for more examples than the schema fuzzers."""


@given(where=st.sampled_from(ID_PARAMETERS), value=HOSTILE_IDS)
@HOSTILE_SETTINGS
def test_a_hostile_id_in_any_path_or_query_is_refused_without_a_5xx(
    stack: Stack, session: requests.Session, where: tuple[str, str, str, str, str], value: str
) -> None:
    service, method, template, name, location = where
    CASES[f"hostile ids {service}"] += 1
    params = {name: value} if location == "query" else {}
    if location == "path":  # quoted: a NUL travels as %00, as a browser would send it
        template = template.replace("{" + name + "}", quote(value, safe=""))
    path = re.sub(r"\{[^}]+\}", "x1", template)  # any other id: one that does not exist
    answer = session.request(
        method, stack.urls[service] + path, params=params, headers=bearer(SELLER), timeout=30
    )
    assert answer.status_code in {404, 422}, (service, method, path, params, answer.text)
    assert answer.json()["error"]["code"] in {"not_found", "validation_error"}


BODIES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("orders", "POST", "/v1/customers", {"name": "Maple", "email": "m@example.com"}),
    (
        "orders",
        "POST",
        "/v1/orders/o1/accept",
        {"customer": {"create": {"name": "Maple", "email": "m@example.com"}}},
    ),
    ("orders", "POST", "/v1/orders/o1/accept", {"customer": {"associate": "c1"}}),
    ("orders", "POST", "/v1/orders/o1/reject", {"reason": "other", "message": "sold out"}),
    ("orders", "POST", "/v1/orders/o1/cancel", {"message": "sorry"}),
    ("orders", "POST", "/v1/orders/o1/split", {"line_ids": ["L1"]}),
    ("orders", "POST", "/v1/orders/o1/items/remove", {"line_ids": ["L1"]}),
    ("orders", "PATCH", "/v1/orders/o1/items", {"items": [{"line_id": "L1", "quantity": 1}]}),
    (
        "invoicing",
        "POST",
        "/v1/orders/o1/invoice/preview",
        {
            "shipping": {
                "carrier": "UPS",
                "tracking_number": "1Z",
                "shipped_at": "2026-01-02",
                "shipping_cost": "1.00",
            }
        },
    ),
]
"""A valid body of every endpoint that takes strings (for an order that does not exist)."""


def _strings(document: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(document, dict):
        return [p for key, value in document.items() for p in _strings(value, (*at, key))]
    if isinstance(document, list):
        return [p for index, value in enumerate(document) for p in _strings(value, (*at, index))]
    return [at] if isinstance(document, str) else []


@st.composite
def hostile_bodies(draw: st.DrawFn) -> tuple[str, str, str, Any, tuple[Any, ...]]:
    service, method, path, body = draw(st.sampled_from(BODIES))
    document = json.loads(json.dumps(body))
    at = draw(st.sampled_from(_strings(document)))
    holder = document
    for part in at[:-1]:
        holder = holder[part]
    text = holder[at[-1]]
    cut = draw(st.integers(min_value=0, max_value=len(text)))
    control = draw(CONTROL.filter(lambda char: at[-1] != "message" or char not in "\t\n\r"))
    holder[at[-1]] = text[:cut] + control + text[cut:]
    return service, method, path, document, at


@given(case=hostile_bodies())
@HOSTILE_SETTINGS
def test_a_control_character_in_any_body_string_is_refused(
    stack: Stack, session: requests.Session, case: tuple[str, str, str, Any, tuple[Any, ...]]
) -> None:
    service, method, path, document, at = case
    CASES[f"hostile bodies {service}"] += 1
    answer = session.request(
        method, stack.urls[service] + path, json=document, headers=bearer(SELLER), timeout=30
    )
    # A name, an id or a message with a control character: refused before any lookup.
    assert answer.status_code == 422, (service, path, at, document, answer.text)
    assert answer.json()["error"]["code"] == "validation_error"
