"""Tracing: off unless the OTEL_* variables ask; on, the context survives headers and the outbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from faststream.kafka import TestKafkaBroker
from juniper_shared import tracing
from juniper_shared.contracts.events import Envelope
from juniper_shared.contracts.registry import ORDERS_PLACED, encode
from juniper_shared.kafka import DeadLetters, Subscription, consume_batches, make_broker
from juniper_shared.producer import OutgoingMessage, Producer
from juniper_shared.settings import ServiceSettings
from juniper_testkit import placed_order
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

OTEL_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)


@pytest.fixture(autouse=True)
def no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    yield
    tracing.shutdown()


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    """Tracing on for the test, spans kept in memory (read them after `tracing.shutdown()`)."""
    exporter = InMemorySpanExporter()
    assert tracing.setup("orders", exporter=exporter)
    yield exporter
    tracing.shutdown()


@pytest.mark.parametrize(
    ("environment", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SERVICE_NAME": "orders"}, False),
    ],
)
def test_only_the_standard_variables_switch_tracing_on(
    environment: dict[str, str], on: bool
) -> None:
    assert tracing.requested(environment) is on


def test_off_by_default_no_provider_no_header_no_stored_context() -> None:
    assert tracing.setup("orders") is False
    assert not tracing.enabled()
    # Nothing was installed globally either.
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)

    headers: list[tuple[str, bytes]] = [("type", b"order.placed")]
    tracing.inject_headers(headers)
    assert headers == [("type", b"order.placed")]

    message = OutgoingMessage.of(placed_order())
    assert message.trace == ()
    assert "trace" not in message.as_document()

    records = [("orders.placed", b"k", b"v", [("type", b"order.placed")])]
    with tracing.publishing(records) as sent:
        assert sent is records  # passed through untouched


def test_context_round_trips_through_kafka_headers(exported: InMemorySpanExporter) -> None:
    tracer = trace.get_tracer("test", tracer_provider=tracing._provider)
    with tracer.start_as_current_span("request") as span:
        headers: list[tuple[str, bytes]] = [("type", b"order.accepted")]
        tracing.inject_headers(headers)
        sent = span.get_span_context()
    assert [name for name, _ in headers] == ["type", "traceparent"]

    received = trace.get_current_span(tracing.extract_context(headers)).get_span_context()
    assert (received.trace_id, received.span_id) == (sent.trace_id, sent.span_id)
    assert received.is_remote


def test_an_outbox_entry_keeps_the_writers_context_for_a_later_publish(
    exported: InMemorySpanExporter,
) -> None:
    tracer = trace.get_tracer("test", tracer_provider=tracing._provider)
    with tracer.start_as_current_span("POST /v1/orders/{order_id}/accept") as request:
        message = OutgoingMessage.of(placed_order())
    stored = message.as_document()
    assert set(stored["trace"]) == {"traceparent"}

    # Later, from the poller, with no span current: the entry names the parent.
    again = OutgoingMessage.from_document(stored)
    assert again == message
    with tracing.publishing(
        [
            (
                "orders.placed",
                b"order-1",
                b"{}",
                [("type", b"order.placed"), *tracing.carrier_headers(again.trace)],
            )
        ]
    ) as records:
        [(_, _, _, headers)] = list(records)
    tracing.shutdown()

    spans = {span.name: span for span in exported.get_finished_spans()}
    publish = spans["orders.placed publish"]
    assert publish.kind is SpanKind.PRODUCER
    assert publish.parent is not None
    assert publish.parent.span_id == request.get_span_context().span_id
    assert publish.context.trace_id == request.get_span_context().trace_id
    assert dict(publish.attributes or {})["messaging.destination.name"] == "orders.placed"
    # The header now names the PRODUCER span, not the stored parent.
    [traceparent] = [value for name, value in headers if name == "traceparent"]
    assert f"{publish.context.span_id:016x}" in traceparent.decode()


def test_a_published_record_names_its_producer_span_and_its_own_correlation(
    exported: InMemorySpanExporter,
) -> None:
    event = placed_order()
    with tracing.publishing(
        [
            (
                "orders.placed",
                b"order-1",
                encode(event),
                [("type", b"order.placed"), ("event_id", str(event.event_id).encode())],
            )
        ]
    ) as records:
        [(_, _, _, headers)] = list(records)
    tracing.shutdown()

    [publish] = exported.get_finished_spans()
    assert publish.kind is SpanKind.PRODUCER
    assert dict(publish.attributes or {})["messaging.message.id"] == str(event.event_id)
    sent = dict(headers)
    # FastStream links a consumed batch to one producer per distinct correlation_id.
    assert sent["correlation_id"] == str(event.event_id).encode()
    assert f"{publish.context.span_id:016x}" in sent["traceparent"].decode()


async def test_a_consumed_batch_is_processed_in_a_span_linked_to_every_records_producer(
    exported: InMemorySpanExporter,
) -> None:
    """FastStream's CONSUMER span (one per batch; from Kafka in a trace of its own, as the
    messaging conventions have it for batches) links to each record's producer; the handler
    runs in it, and the events it causes carry its context."""
    settings = ServiceSettings(
        auth_jwt_secret="dev-only-secret", kafka_security_protocol="PLAINTEXT"
    )
    broker = make_broker(settings, service="orders")
    handled: list[tuple[trace.Span, list[OutgoingMessage]]] = []

    async def handle(events: list[Envelope]) -> None:
        handled.append((trace.get_current_span(), [OutgoingMessage.of(e) for e in events]))

    consume_batches(
        broker,
        [Subscription(ORDERS_PLACED, handle)],
        group_id="orders",
        settings=settings,
        dead_letters=DeadLetters(Producer(settings, client_id="unused")),
    )
    first, second = placed_order(), placed_order()
    tracer = trace.get_tracer("test", tracer_provider=tracing._provider)
    async with TestKafkaBroker(broker) as test_broker:
        with tracer.start_as_current_span("checkout") as checkout:
            await test_broker.publish_batch(encode(first), encode(second), topic=ORDERS_PLACED.name)
    tracing.shutdown()

    [(span, caused)] = handled
    spans = exported.get_finished_spans()
    [process] = [
        s for s in spans if s.name == "orders.placed process" and s.kind is SpanKind.CONSUMER
    ]
    assert span.get_span_context().span_id == process.context.span_id
    assert dict(process.attributes or {})["juniper.event.type"] == "order.placed"
    assert list(dict(process.attributes or {})["messaging.message.id"]) == [
        str(first.event_id),
        str(second.event_id),
    ]
    [batch] = [s for s in spans if process.parent and s.context.span_id == process.parent.span_id]
    assert batch.links
    assert {link.context.trace_id for link in batch.links} == {checkout.get_span_context().trace_id}
    for message in caused:
        assert f"{process.context.span_id:016x}" in dict(message.trace)["traceparent"]


def test_the_service_names_itself_unless_otel_service_name_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert tracing.setup("invoicing", exporter=InMemorySpanExporter())
    assert tracing._provider is not None
    assert tracing._provider.resource.attributes["service.name"] == "invoicing"
    tracing.shutdown()

    monkeypatch.setenv("OTEL_SERVICE_NAME", "invoicing-eu")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=prod")
    assert tracing.setup("invoicing", exporter=InMemorySpanExporter())
    assert tracing._provider is not None
    attributes = tracing._provider.resource.attributes
    assert attributes["service.name"] == "invoicing-eu"
    assert attributes["deployment.environment.name"] == "prod"
