"""Traces a person can follow: the seller's click on one service, the event it caused on Kafka,
and what other services did with it, exported over OTLP/HTTP to a real receiver. The click, the
outbox and the publish are one trace; each consumed batch is a trace of its own (FastStream's,
as the messaging conventions have it for batches) that links to the PRODUCER span of every
record in it, so a person follows the link from the click's trace to the consumer's.

The services run as real processes (tests/support/stack.py) on the real Kafka and FerretDB,
with only the standard OTEL_* variables set; the receiver is a plain HTTP server in a thread
that decodes the protobuf `ExportTraceServiceRequest`s, as a collector does.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from juniper_shared import tracing
from juniper_shared.contracts.registry import ORDERS_PLACED
from juniper_shared.outbox import OUTBOX_FIELD, OutboxRelay, new_outbox
from juniper_shared.producer import EventPublisher, OutgoingMessage, Producer
from juniper_shared.settings import ServiceSettings
from juniper_testkit import (
    free_port,
    kafka_credentials,
    placed_order,
    read_topic,
    wait_until,
)
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pymongo import AsyncMongoClient

from ..e2e.support import Buyer, Seller
from ..support.stack import Inbox, Stack

pytestmark = pytest.mark.integration

WAIT = 45.0
"""Bound on waiting for spans: batches of 200 ms, five processes on two busy cores."""

SERVER, CLIENT, PRODUCER, CONSUMER = (
    SpanProto.SPAN_KIND_SERVER,
    SpanProto.SPAN_KIND_CLIENT,
    SpanProto.SPAN_KIND_PRODUCER,
    SpanProto.SPAN_KIND_CONSUMER,
)


# --- a tiny OTLP/HTTP receiver --------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    links: frozenset[str]
    """The span ids this span links to."""


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value") or "string_value"
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind)


def _as_list(attribute: Any) -> list[Any]:
    """A batch span names its records' values as a list, or the one value when they agree."""
    return attribute if isinstance(attribute, list) else [attribute]


class OtlpReceiver:
    """POST /v1/traces with protobuf bodies, as the OTLP/HTTP exporter sends them."""

    def __init__(self) -> None:
        self.port = free_port()
        self._spans: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                receiver.add(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, request: ExportTraceServiceRequest) -> None:
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        Received(
                            service=str(resource.get("service.name", "")),
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            links=frozenset(link.span_id.hex() for link in span.links),
                        )
                    )
        with self._lock:
            self._spans.extend(received)

    def spans(self) -> list[Received]:
        with self._lock:
            return list(self._spans)

    async def one(self, description: str, **expected: Any) -> Received:
        """The single span whose fields (and `attributes`' items) match, and that links to
        `links_to` (a span id) if given, once it has arrived."""
        attributes = expected.pop("attributes", {})
        links_to = expected.pop("links_to", None)

        def matching() -> list[Received]:
            return [
                span
                for span in self.spans()
                if all(getattr(span, key) == value for key, value in expected.items())
                and all(span.attributes.get(key) == value for key, value in attributes.items())
                and (links_to is None or links_to in span.links)
            ]

        async def count() -> int:
            return len(matching())

        try:
            await wait_until(count, equals=1, timeout=WAIT, interval=0.2)
        except AssertionError:
            seen = sorted({(s.service, s.name) for s in self.spans()})
            raise AssertionError(
                f"no single span for {description}; received {len(matching())} of them, "
                f"and these (service, name) pairs: {seen}"
            ) from None
        return matching()[0]

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    with Inbox() as server:
        yield server


@pytest.fixture(scope="module")
async def traced_stack(
    infra: Any, inbox: Inbox, receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    async with Stack.running(
        kafka_bootstrap=infra.kafka_bootstrap,
        mongodb_url=infra.mongodb_url,
        inbox=inbox,
        log_dir=tmp_path_factory.mktemp("tracing-logs"),
        label="otel",
        extra_env={
            # Only the standard variables: nothing else switches tracing on.
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        },
    ) as system:
        yield system


async def processing(receiver: OtlpReceiver, consumer: str, publish: Received) -> Received:
    """The CONSUMER span in which `consumer` handled the record `publish` sent: FastStream's
    batch span, child of the batch's receipt, which links to the record's PRODUCER span."""
    receipt = await receiver.one(
        f"{consumer}'s receipt of the batch with {publish.name}",
        service=consumer,
        kind=CONSUMER,
        links_to=publish.span_id,
    )
    return await receiver.one(
        f"{consumer}'s processing of the batch with {publish.name}",
        service=consumer,
        kind=CONSUMER,
        parent_id=receipt.span_id,
    )


# --- the stories ------------------------------------------------------------------------------


async def test_an_accepted_order_is_followed_from_the_click_to_invoicing(
    traced_stack: Stack, receiver: OtlpReceiver
) -> None:
    async with httpx.AsyncClient(timeout=15) as http:
        seller = Seller(traced_stack, http)
        buyer = Buyer.new()
        await seller.knows(buyer)
        order_id = (await seller.receives_order(buyer))["order_id"]
        accepted = await seller.accept(order_id)
        assert accepted.status_code == 200, accepted.text

    click = await receiver.one(
        "the seller's accept on orders",
        service="orders",
        kind=SERVER,
        name="POST /v1/orders/{order_id}/accept",
    )
    publish = await receiver.one(
        "order.accepted published by orders",
        service="orders",
        kind=PRODUCER,
        trace_id=click.trace_id,
        attributes={
            "juniper.event.type": "order.accepted",
            "messaging.kafka.message.key": order_id,
        },
    )
    assert publish.name == f"{traced_stack.topic_prefix}orders.events publish"
    assert publish.parent_id == click.span_id
    assert publish.attributes["messaging.system"] == "kafka"

    for consumer in ("invoicing", "notifications"):
        processed = await processing(receiver, consumer, publish)
        # The batch may hold the order's earlier events too (order.received).
        assert "order.accepted" in _as_list(processed.attributes["juniper.event.type"])
        assert processed.name == f"{traced_stack.topic_prefix}orders.events process"
        assert publish.attributes["messaging.message.id"] in _as_list(
            processed.attributes["messaging.message.id"]
        )


async def test_a_confirmed_invoice_is_followed_from_the_click_to_the_card_processor(
    traced_stack: Stack, receiver: OtlpReceiver
) -> None:
    async with httpx.AsyncClient(timeout=15) as http:
        seller = Seller(traced_stack, http)
        buyer = Buyer.new()
        await seller.knows(buyer)
        order_id = (await seller.receives_order(buyer))["order_id"]
        assert (await seller.accept(order_id)).status_code == 200
        confirmed = await seller.invoice_and_confirm(order_id)
        await seller.invoice_once(confirmed["invoice_id"], "paid")

    click = await receiver.one(
        "the seller's confirm on invoicing",
        service="invoicing",
        kind=SERVER,
        name="POST /v1/invoices/{invoice_id}/confirm",
    )
    issued = await receiver.one(
        "invoice.issued published by invoicing",
        service="invoicing",
        kind=PRODUCER,
        trace_id=click.trace_id,
        attributes={"juniper.event.type": "invoice.issued"},
    )
    assert issued.parent_id == click.span_id
    charged = await processing(receiver, "payments", issued)
    assert "invoice.issued" in _as_list(charged.attributes["juniper.event.type"])
    call = await receiver.one(
        "the charge sent to the card processor",
        service="payments",
        kind=CLIENT,
        trace_id=charged.trace_id,
    )
    assert call.parent_id == charged.span_id
    # The httpx instrumentation names the URL by the old or the new HTTP conventions.
    url = call.attributes.get("url.full") or call.attributes.get("http.url")
    assert str(url) == traced_stack.url("sandbox") + "/v1/charges"


async def test_health_probes_are_not_traced(traced_stack: Stack, receiver: OtlpReceiver) -> None:
    async with httpx.AsyncClient(timeout=15) as http:
        assert (await http.get(traced_stack.url("orders") + "/readyz")).status_code == 200
        # Something traced after it, so the probe would have been exported by now.
        seller = Seller(traced_stack, http)
        assert (await seller.get("orders", "/v1/orders")).status_code == 200
    await receiver.one("the orders listing", service="orders", kind=SERVER, name="GET /v1/orders")
    assert not [s for s in receiver.spans() if s.name.endswith(("/readyz", "/healthz", "/metrics"))]


# --- the outbox poller, later: the trace goes on ------------------------------------------------


async def test_an_event_the_poller_publishes_later_continues_the_writers_trace(
    infra: Any,
    mongo_client: AsyncMongoClient[dict[str, Any]],
    database_name: str,
    unique: str,
) -> None:
    """The fast path never ran (as after a crash): the poller finds the entry and publishes it,
    and the PRODUCER span is still the child of the request that wrote it."""
    exporter = InMemorySpanExporter()
    assert tracing.setup("orders", exporter=exporter)
    try:
        tracer = trace.get_tracer("test", tracer_provider=tracing._provider)
        # Older than the poller's grace period, so it is not left to the fast path.
        event = placed_order().model_copy(
            update={"occurred_at": datetime.now(UTC) - timedelta(seconds=30)}
        )
        with tracer.start_as_current_span("POST /v1/orders") as request:
            message = OutgoingMessage.of(event)
        collection = mongo_client[database_name]["orders"]
        document: dict[str, Any] = {"_id": "order-1"}
        new_outbox(document, [message])  # as a service's write stores it
        await collection.insert_one(document)

        prefix = f"otel{unique}."
        await infra.provision(prefix)
        settings = ServiceSettings(
            kafka_bootstrap_servers=infra.kafka_bootstrap,
            auth_jwt_secret="dev-only-secret",
            **kafka_credentials("checkout"),
        )
        producer = Producer(settings, client_id="tracing-test")
        await producer.start()
        try:
            relay = OutboxRelay(
                EventPublisher(producer, topic_prefix=prefix), {"orders": collection}
            )
            assert await relay.poll_once() == 1
        finally:
            await producer.stop()
        document = await collection.find_one({"_id": "order-1"})
        assert document is not None and document[OUTBOX_FIELD] == []  # $pull matched the entry

        [record] = await read_topic(
            infra.kafka_bootstrap, prefix + ORDERS_PLACED.name, until=lambda r: len(r) >= 1
        )
    finally:
        tracing.shutdown()

    [publish] = [s for s in exporter.get_finished_spans() if s.name.endswith(" publish")]
    assert publish.parent is not None
    assert publish.parent.span_id == request.get_span_context().span_id
    assert publish.context.trace_id == request.get_span_context().trace_id
    carried = trace.get_current_span(tracing.extract_context(record.headers)).get_span_context()
    assert carried.span_id == publish.context.span_id
