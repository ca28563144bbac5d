"""OpenTelemetry traces across HTTP and Kafka hops, off unless the standard variables ask for it.

On when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, or
`OTEL_TRACES_EXPORTER` names an exporter (not `none`); `OTEL_SDK_DISABLED=true` keeps it off.
The SDK itself reads `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`,
`OTEL_BSP_*` and the exporter's endpoint, headers and timeout.

The frameworks' own instrumentation makes the spans: FastAPI's (SERVER), httpx's (CLIENT) and
FastStream's `KafkaTelemetryMiddleware` (CONSUMER: one "<topic> process" span per consumed batch,
in a trace of its own that links to every record's producer, as the messaging conventions have
it for batches). Publishing goes through our aiokafka `Producer`, so this module makes its
PRODUCER span ("<topic> publish") and injects its context (W3C `traceparent`) into the record's
headers. The outbox stores the context of the change that wrote an event, so an event the relay
or the poller publishes later continues the trace of the request that caused it.

Off, every hook is a flag check: no span, no header, no exporter thread.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind, StatusCode

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

CORRELATION_HEADER = "correlation_id"
"""FastStream links a consumed batch to one producer per distinct value of this header (its own
publisher gives every message a fresh one), so each record carries its event id there."""

_enabled = False
_provider: TracerProvider | None = None
_tracer: trace.Tracer = trace.NoOpTracer()
_httpx: HTTPXClientInstrumentor | None = None


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
    Call it before the broker and the app are built (they pick the instrumentation up then).

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


def broker_middlewares() -> tuple[Any, ...]:
    """FastStream's CONSUMER spans for the broker's subscribers, when tracing is on."""
    if not _enabled:
        return ()
    from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

    return (KafkaTelemetryMiddleware(tracer_provider=_provider),)


def describe_batch(events: Sequence[Envelope]) -> None:
    """Name the batch's event types and ids on FastStream's CONSUMER span (a list when several)."""
    if not _enabled or not events:
        return
    span = trace.get_current_span()
    types = sorted({event.type for event in events})
    ids = [str(event.event_id) for event in events]
    span.set_attribute("juniper.event.type", types[0] if len(types) == 1 else types)
    span.set_attribute("messaging.message.id", ids[0] if len(ids) == 1 else ids)


def inject_headers(headers: list[Header], context: Context | None = None) -> None:
    """Append the trace context (the current one by default) as W3C headers; nothing when off."""
    if not _enabled:
        return
    headers.extend((name, value.encode()) for name, value in capture(context))


def extract_context(headers: Iterable[tuple[str, bytes | None]] | None) -> Context:
    """The trace context carried in Kafka headers (an empty context when there is none)."""
    fields = propagate.get_global_textmap().fields
    carrier = {
        name: (value or b"").decode("latin-1") for name, value in headers or () if name in fields
    }
    return propagate.extract(carrier)


def capture(context: Context | None = None) -> Carrier:
    """The trace context to store with an outgoing event (`()` when off or outside any trace)."""
    if not _enabled:
        return ()
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return tuple(carrier.items())


def carrier_headers(carrier: Carrier) -> list[Header]:
    """A stored trace context as headers, naming the parent of the record's PRODUCER span."""
    if not _enabled or not carrier:
        return []
    return [(name, value.encode()) for name, value in carrier]


def publishing(records: Iterable[Record]) -> AbstractContextManager[Iterable[Record]]:
    """`with publishing(records) as records:` send them; a PRODUCER span per record, ended
    when the block ends (after Kafka acknowledged). Off: the records pass through untouched."""
    if not _enabled:
        return nullcontext(records)
    return _publishing(records)


@contextmanager
def _publishing(records: Iterable[Record]) -> Iterator[list[Record]]:
    fields = propagate.get_global_textmap().fields
    spans: list[Span] = []
    traced: list[Record] = []
    for topic, key, value, headers in records:
        # A context in the headers (stored with the outbox entry, or the original message's,
        # for a dead letter) is the parent; else the current one.
        parent = extract_context(headers) if any(n in fields for n, _ in headers) else None
        found = dict(headers)
        attributes = {
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": topic,
        }
        if key is not None:
            attributes["messaging.kafka.message.key"] = key.decode("utf-8", "replace")
        if "type" in found:
            attributes["juniper.event.type"] = found["type"].decode("utf-8", "replace")
        kept = [(name, each) for name, each in headers if name not in fields]
        if "event_id" in found:
            attributes["messaging.message.id"] = found["event_id"].decode("utf-8", "replace")
            if CORRELATION_HEADER not in found:
                kept.append((CORRELATION_HEADER, found["event_id"]))
        span = _tracer.start_span(
            f"{topic} publish", context=parent, kind=SpanKind.PRODUCER, attributes=attributes
        )
        spans.append(span)
        inject_headers(kept, trace.set_span_in_context(span))
        traced.append((topic, key, value, kept))
    try:
        yield traced
    except BaseException as error:
        for span in spans:
            span.record_exception(error)
            span.set_status(StatusCode.ERROR, type(error).__name__)
        raise
    finally:
        for span in spans:
            span.end()
