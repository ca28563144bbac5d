"""Schemathesis against each service's own OpenAPI document, on real HTTP, Kafka and FerretDB.

Checks: no 5xx, bodies and content types as documented, every status code documented, and
every 4xx/5xx body is the contract's `{"error": {"code", "message"}}`. Path and query ids are
sometimes swapped for ids that exist (an order with an invoice and a payment), so the fuzzed
bodies reach the real handlers and not only the 404 branch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from juniper_shared.testing import bearer
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
