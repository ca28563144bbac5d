"""OpenTelemetry traces across HTTP and Kafka hops, off unless the standard variables ask for it.

On when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, or
`OTEL_TRACES_EXPORTER` names an exporter (not `none`); `OTEL_SDK_DISABLED=true` keeps it off.
The SDK itself reads `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`,
`OTEL_BSP_*` and the exporter's endpoint, headers and timeout.

What is traced (W3C `traceparent`/`tracestate` carry the context):
- HTTP: a SERVER span per request (FastAPI instrumentation), a CLIENT span per httpx request.
- Kafka out: a PRODUCER span "<topic> publish" per record, its context injected in the headers.
  A trace context already in a record's headers names the parent: the context stored with an
  outbox entry (so an event published later by the relay or the poller continues the trace of
  the request that caused it) or the original message's, for a dead letter.
- Kafka in: a CONSUMER span "<topic> process" per handled record, child of its header context.
  A batch of one runs its handler inside that span. A larger batch is handled as a whole: its
  handler runs inside one batch span "<topic> process" that links to every record's context
  (the messaging conventions' batch receive), and an event caused by a record of the batch
  (its `causation_id`) is still parented on that record's span.

Off, every hook is a flag check: no span, no header, no exporter thread.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.trace import Link, Span, SpanKind, StatusCode

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    from juniper_shared.contracts.events import Envelope

log = logging.getLogger(__name__)

Header = tuple[str, bytes]
Record = tuple[str, bytes | None, bytes, list[Header]]
"""(topic, key, value, headers), as `Producer.send_all` takes them."""
Carrier = tuple[tuple[str, str], ...]
"""A trace context as stored with an outbox entry: W3C header names and values."""

VARIABLES = frozenset(
    {
        "OTEL_SDK_DISABLED",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_TRACES_EXPORTER",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_PROPAGATORS",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        "OTEL_BSP_SCHEDULE_DELAY",
        "OTEL_BSP_MAX_QUEUE_SIZE",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        "OTEL_BSP_EXPORT_TIMEOUT",
    }
)
"""The standard variables a service honours (read here or by the OpenTelemetry SDK)."""

SHUTDOWN_SECONDS = 5.0
"""How long a drain waits for the last spans to be exported (the pod's grace is 45 s)."""

EXCLUDED_URLS = "/healthz,/readyz,/metrics"
"""Probes and scrapes would drown the traces a person looks for."""

_enabled = False
_provider: TracerProvider | None = None
_tracer: trace.Tracer = trace.NoOpTracer()
_httpx: HTTPXClientInstrumentor | None = None

_record_spans: ContextVar[Mapping[str, Span] | None] = ContextVar(
    "juniper_record_spans", default=None
)
"""While a consumed batch is handled: the CONSUMER span of each of its events, by event id."""


def requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the standard OTEL_* variables ask for traces."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(
        exporter
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    )


def enabled() -> bool:
    return _enabled


def setup(service: str, *, exporter: SpanExporter | None = None) -> bool:
    """Turn tracing on for this process when the environment asks; returns whether it is on.

    `exporter` replaces the ones `OTEL_TRACES_EXPORTER` names (tests pass an in-memory one).
    """
    global _enabled, _provider, _tracer, _httpx
    if _enabled:
        return True
    if exporter is None and not requested():
        return False
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        # Neither OTEL_SERVICE_NAME nor OTEL_RESOURCE_ATTRIBUTES named it: the service does.
        resource = resource.merge(Resource({SERVICE_NAME: service}))
    provider = TracerProvider(resource=resource)  # the sampler comes from OTEL_TRACES_SAMPLER
    exporters = [exporter] if exporter is not None else _exporters_from_env()
    if not exporters:
        return False
    for each in exporters:
        provider.add_span_processor(BatchSpanProcessor(each))

    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    _httpx = HTTPXClientInstrumentor()
    _httpx.instrument(tracer_provider=provider)
    _provider = provider
    _tracer = provider.get_tracer("juniper_shared")
    _enabled = True
    log.info("tracing on: %s", ", ".join(type(each).__name__ for each in exporters))
    return True


def _exporters_from_env() -> list[SpanExporter]:
    names = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() or "otlp"
    exporters: list[SpanExporter] = []
    for name in (part.strip() for part in names.split(",")):
        if name == "otlp":
            # HTTP/protobuf; reads OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, _HEADERS, _TIMEOUT.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name and name != "none":
            log.warning("OTEL_TRACES_EXPORTER %r is not supported here (otlp, console)", name)
    return exporters


def shutdown() -> None:
    """Export what is buffered and stop (on drain); blocks up to `SHUTDOWN_SECONDS`."""
    global _enabled, _provider, _tracer, _httpx
    if not _enabled:
        return
    _enabled = False
    if _httpx is not None:
        _httpx.uninstrument()
        _httpx = None
    if _provider is not None:
        # A collector that is down must not hold up the drain (the SDK would wait up to 30 s).
        worker = threading.Thread(target=_provider.shutdown, name="otel-shutdown", daemon=True)
        worker.start()
        worker.join(SHUTDOWN_SECONDS)
        _provider = None
    _tracer = trace.NoOpTracer()


def instrument_app(app: FastAPI) -> None:
    """SERVER spans for the app's requests, when tracing is on."""
    if not _enabled:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_provider,
        excluded_urls=EXCLUDED_URLS,
        # The ASGI "receive"/"send" sub-spans add nothing a person looks for.
        exclude_spans=["receive", "send"],
    )


# --- context in Kafka headers and outbox entries --------------------------------------------


def inject_headers(headers: list[Header], context: Context | None = None) -> None:
    """Append the trace context (the current one by default) as W3C headers; nothing when off."""
    if not _enabled:
        return
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    headers.extend((name, value.encode()) for name, value in carrier.items())


def extract_context(headers: Iterable[tuple[str, bytes | None]] | None) -> Context:
    """The trace context carried in Kafka headers (an empty context when there is none)."""
    fields = propagate.get_global_textmap().fields
    carrier = {
        name: (value or b"").decode("latin-1") for name, value in headers or () if name in fields
    }
    return propagate.extract(carrier)


def _has_context(headers: Iterable[tuple[str, Any]] | None) -> bool:
    fields = propagate.get_global_textmap().fields
    return any(name in fields for name, _ in headers or ())


def capture(causation_id: str | None = None) -> Carrier:
    """The trace context to store with an outgoing event (`()` when off or outside any trace):
    the span of the consumed event that caused it, if known, else the current span."""
    if not _enabled:
        return ()
    context: Context | None = None
    spans = _record_spans.get()
    if spans is not None and causation_id is not None:
        cause = spans.get(causation_id)
        if cause is not None:
            context = trace.set_span_in_context(cause)
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return tuple(carrier.items())


def carrier_headers(carrier: Carrier) -> list[Header]:
    """A stored trace context as headers, naming the parent of the record's PRODUCER span."""
    if not _enabled or not carrier:
        return []
    return [(name, value.encode()) for name, value in carrier]


# --- spans around publishing and consuming --------------------------------------------------


def publishing(
    records: Iterable[Record],
) -> AbstractContextManager[Iterable[Record]]:
    """`with publishing(records) as records:` send them; a PRODUCER span per record, ended
    when the block ends (after Kafka acknowledged). Off: the records pass through untouched."""
    if not _enabled:
        return nullcontext(records)
    return _Publishing(records)


class _Publishing:
    def __init__(self, records: Iterable[Record]) -> None:
        self._records = records
        self._spans: list[Span] = []

    def __enter__(self) -> list[Record]:
        fields = propagate.get_global_textmap().fields
        traced: list[Record] = []
        for topic, key, value, headers in self._records:
            parent = extract_context(headers) if _has_context(headers) else None
            attributes: dict[str, str] = {
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.operation.name": "publish",
                "messaging.destination.name": topic,
            }
            if key is not None:
                attributes["messaging.kafka.message.key"] = key.decode("utf-8", "replace")
            kept: list[Header] = []
            for name, header_value in headers:
                if name == "type":
                    attributes["juniper.event.type"] = header_value.decode("utf-8", "replace")
                elif name == "event_id":
                    attributes["messaging.message.id"] = header_value.decode("utf-8", "replace")
                if name not in fields:
                    kept.append((name, header_value))
            span = _tracer.start_span(
                f"{topic} publish", context=parent, kind=SpanKind.PRODUCER, attributes=attributes
            )
            self._spans.append(span)
            inject_headers(kept, trace.set_span_in_context(span))
            traced.append((topic, key, value, kept))
        return traced

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _end(self._spans, exc)


def consuming(
    topic: str,
    group_id: str,
    records: Sequence[Any],
    events: Sequence[Envelope],
) -> AbstractContextManager[None]:
    """`with consuming(...)`: handle a batch's valid events; a CONSUMER span per event, child of
    its record's header context (see the module docstring for batches). Off: nothing."""
    if not _enabled:
        return nullcontext()
    return _Consuming(topic, group_id, records, events)


class _Consuming:
    def __init__(
        self, topic: str, group_id: str, records: Sequence[Any], events: Sequence[Envelope]
    ) -> None:
        self._topic = topic
        self._group_id = group_id
        self._records = records
        self._events = events
        self._spans: list[Span] = []
        self._token: Token[Context] | None = None
        self._spans_token: Token[Mapping[str, Span] | None] | None = None

    def __enter__(self) -> None:
        by_event_id = {_event_id(record): record for record in self._records}
        by_event: dict[str, Span] = {}
        links: list[Link] = []
        for event in self._events:
            event_id = str(event.event_id)
            record = by_event_id.get(event_id)
            headers = record.headers if record is not None else None
            parent = extract_context(headers)
            producer = trace.get_current_span(parent).get_span_context()
            if producer.is_valid:
                links.append(Link(producer))
            attributes: dict[str, str | int] = {
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": record.topic if record is not None else self._topic,
                "messaging.consumer.group.name": self._group_id,
                "messaging.message.id": event_id,
                "juniper.event.type": event.type,
            }
            if record is not None:
                attributes["messaging.destination.partition.id"] = str(record.partition)
                attributes["messaging.kafka.offset"] = record.offset
                if record.key is not None:
                    attributes["messaging.kafka.message.key"] = bytes(record.key).decode(
                        "utf-8", "replace"
                    )
            span = _tracer.start_span(
                f"{self._topic} process",
                context=parent,
                kind=SpanKind.CONSUMER,
                attributes=attributes,
            )
            self._spans.append(span)
            by_event[event_id] = span
        if len(self._spans) == 1:
            current = self._spans[0]
        else:
            current = _tracer.start_span(
                f"{self._topic} process",
                context=Context(),
                kind=SpanKind.CONSUMER,
                links=links,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "process",
                    "messaging.destination.name": self._topic,
                    "messaging.consumer.group.name": self._group_id,
                    "messaging.batch.message_count": len(self._events),
                },
            )
            self._spans.append(current)
        self._token = otel_context.attach(trace.set_span_in_context(current))
        self._spans_token = _record_spans.set(by_event)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._spans_token is not None:
            _record_spans.reset(self._spans_token)
        if self._token is not None:
            otel_context.detach(self._token)
        _end(self._spans, exc)


def _event_id(record: Any) -> str | None:
    """A record's event id: our producers put it in a header; others' only in the JSON."""
    for name, value in record.headers or ():
        if name == "event_id":
            return bytes(value or b"").decode("utf-8", "replace")
    try:
        found = json.loads(record.value)["event_id"]
    except (TypeError, ValueError, KeyError):
        return None
    return str(found)


def _end(spans: Sequence[Span], error: BaseException | None) -> None:
    for span in spans:
        if error is not None:
            span.record_exception(error)
            span.set_status(StatusCode.ERROR, f"{type(error).__name__}")
        span.end()
