"""Tracing: off unless the OTEL_* variables ask; on, the context survives headers and the outbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiokafka import ConsumerRecord
from juniper_shared import tracing
from juniper_shared.contracts.registry import encode
from juniper_shared.kafka import OutgoingMessage
from juniper_testkit import placed_order
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
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


def record(
    topic: str, value: bytes, headers: list[tuple[str, bytes]]
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic,
        partition=0,
        offset=7,
        timestamp=0,
        timestamp_type=0,
        key=b"order-1",
        value=value,
        checksum=None,
        serialized_key_size=7,
        serialized_value_size=len(value),
        headers=headers,
    )


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


def test_a_consumed_record_is_processed_in_a_child_of_its_producer(
    exported: InMemorySpanExporter,
) -> None:
    event = placed_order()
    tracer = trace.get_tracer("test", tracer_provider=tracing._provider)
    with tracer.start_as_current_span("checkout") as checkout:
        headers: list[tuple[str, bytes]] = [("type", b"order.placed")]
        tracing.inject_headers(headers)
    one = record("orders.placed", encode(event), headers)

    with tracing.consuming("orders.placed", "orders", [one], [event]):
        handling = trace.get_current_span()
        caused = OutgoingMessage.of(placed_order())
    tracing.shutdown()

    [process] = [s for s in exported.get_finished_spans() if s.name == "orders.placed process"]
    assert process.kind is SpanKind.CONSUMER
    assert process.parent is not None
    assert process.parent.span_id == checkout.get_span_context().span_id
    assert handling.get_span_context().span_id == process.context.span_id
    assert f"{process.context.span_id:016x}" in dict(caused.trace)["traceparent"]


def test_a_batch_links_every_record_and_parents_each_caused_event_on_its_record(
    exported: InMemorySpanExporter,
) -> None:
    first, second = placed_order(), placed_order()
    tracer = trace.get_tracer("test", tracer_provider=tracing._provider)
    records, producers = [], []
    for event in (first, second):
        with tracer.start_as_current_span("checkout") as checkout:
            headers: list[tuple[str, bytes]] = []
            tracing.inject_headers(headers)
        producers.append(checkout.get_span_context())
        records.append(record("orders.placed", encode(event), headers))

    with tracing.consuming("orders.placed", "orders", records, [first, second]):
        caused = [
            tracing.capture(str(event.event_id)) for event in (second, first)
        ]  # as a handler building events with causation_id = the consumed event's id
    tracing.shutdown()

    spans: list[ReadableSpan] = [
        s for s in exported.get_finished_spans() if s.name == "orders.placed process"
    ]
    batch = next(s for s in spans if s.links)
    per_record = [s for s in spans if s is not batch]
    assert {link.context.span_id for link in batch.links} == {p.span_id for p in producers}
    assert sorted(s.parent.span_id for s in per_record if s.parent) == sorted(
        p.span_id for p in producers
    )
    by_parent = {s.parent.span_id: s for s in per_record if s.parent}
    second_span = by_parent[producers[1].span_id]
    assert f"{second_span.context.span_id:016x}" in dict(caused[0])["traceparent"]


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
