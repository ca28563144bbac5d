"""The one registry of topics: each bound to its key, its event types and its single writer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, get_args

import pydantic_core
from pydantic import ValidationError

from juniper_shared.contracts.events import (
    Envelope,
    InvoiceIssued,
    InvoicePaid,
    InvoicePaymentFailed,
    InvoiceVoided,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderPlaced,
    OrderReceived,
    OrderRejected,
    OrderSplit,
    OrderUpdated,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
)

CURRENT_VERSION = 1

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

UPCASTERS: dict[tuple[str, int], Upcaster] = {}
"""(event type, version) -> function turning that version's `data` into the next version's."""

MAX_MESSAGE_BYTES = 1_000_000
"""Messages larger than this are refused before parsing (Kafka's default max is 1 MB)."""


class PoisonMessage(Exception):
    """A message no retry can fix: undecodable, invalid, or of an unsupported version."""


class ForgedEvent(PoisonMessage):
    """An event its topic's writer did not produce, or whose seller is not the seller of the
    order or invoice it names: applied, it would let one principal act for another."""


class UnknownEventType(Exception):
    """A well-formed envelope whose type this topic's consumers do not handle: skipped."""


@dataclass(frozen=True)
class Topic:
    name: str
    key: str
    writer: str
    events: tuple[type[Envelope], ...]
    readers: tuple[str, ...] = ()
    description: str = ""
    _by_type: dict[str, type[Envelope]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_type = {model.model_fields["type"].default: model for model in self.events}
        object.__setattr__(self, "_by_type", by_type)

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"

    @property
    def event_types(self) -> tuple[str, ...]:
        return tuple(self._by_type)

    def decode(self, raw: bytes | None) -> Envelope:
        """Parse and validate one message; raises PoisonMessage or UnknownEventType."""
        if raw is None:
            raise PoisonMessage("empty message")
        if len(raw) > MAX_MESSAGE_BYTES:
            raise PoisonMessage(f"message of {len(raw)} bytes exceeds {MAX_MESSAGE_BYTES}")
        try:
            document = pydantic_core.from_json(raw)
        except ValueError as error:
            raise PoisonMessage(f"not JSON: {error}") from error
        if not isinstance(document, dict):
            raise PoisonMessage("envelope is not a JSON object")
        event_type = document.get("type")
        model = self._by_type.get(event_type) if isinstance(event_type, str) else None
        if model is None:
            if isinstance(event_type, str) and event_type:
                raise UnknownEventType(event_type)
            raise PoisonMessage("envelope has no type")
        document = _upcast(event_type, document)  # type: ignore[arg-type]
        try:
            event = model.model_validate(document)
        except ValidationError as error:
            raise PoisonMessage(_summarize(error)) from error
        if event.producer != self.writer:
            raise ForgedEvent(
                f"{event.type} from producer {event.producer!r}; {self.name} is written by "
                f"{self.writer!r} only"
            )
        if others := _sellers_named(event.data) - {event.seller_id}:
            raise ForgedEvent(
                f"{event.type} of seller {event.seller_id!r} names seller {sorted(others)[0]!r}"
            )
        return event


def _sellers_named(data: Any) -> set[str]:
    """The sellers `data` names: its own `seller_id`, and that of each order it carries."""
    model = type(data)
    if model not in _SELLER_FIELDS:
        _SELLER_FIELDS[model] = _seller_fields(model)
    own, carriers = _SELLER_FIELDS[model]
    parts = [data] if own else []
    parts += [part for name in carriers if (part := getattr(data, name)) is not None]
    return {seller for part in parts if isinstance(seller := part.seller_id, str)}


_SELLER_FIELDS: dict[type[Any], tuple[bool, tuple[str, ...]]] = {}
"""Per event data class, found once: this check runs on every event consumed."""


def _seller_fields(model: type[Any]) -> tuple[bool, tuple[str, ...]]:
    """Whether `model` has a `seller_id`, and its fields that hold a model with one (an order
    snapshot, possibly optional)."""
    fields: dict[str, Any] = getattr(model, "model_fields", {})

    def has_seller(annotation: Any) -> bool:
        return any(
            "seller_id" in getattr(kind, "model_fields", {})
            for kind in (annotation, *get_args(annotation))
        )

    carriers = tuple(name for name, info in fields.items() if has_seller(info.annotation))
    return "seller_id" in fields, carriers


def _upcast(event_type: str, document: dict[str, Any]) -> dict[str, Any]:
    version = document.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise PoisonMessage(f"invalid version {version!r}")
    if version > CURRENT_VERSION:
        raise PoisonMessage(f"unsupported version {version} of {event_type}")
    while version < CURRENT_VERSION:
        upcaster = UPCASTERS.get((event_type, version))
        if upcaster is None:
            raise PoisonMessage(f"no upcaster for {event_type} v{version}")
        document = {
            **document,
            "data": upcaster(document.get("data") or {}),
            "version": version + 1,
        }
        version += 1
    return document


def _summarize(error: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}"
        for issue in error.errors(include_url=False, include_input=False)[:5]
    ]
    return "invalid event: " + "; ".join(problems)


def encode(event: Envelope) -> bytes:
    """The wire form of an event: compact JSON of the whole envelope."""
    return event.model_dump_json().encode()


ORDERS_PLACED = Topic(
    name="orders.placed",
    key="order id",
    writer="checkout",
    events=(OrderPlaced,),
    readers=("orders", "payments"),
    description="Orders buyers placed, published by the platform's checkout.",
)
ORDERS_EVENTS = Topic(
    name="orders.events",
    key="order id",
    writer="orders",
    events=(
        OrderReceived,
        OrderAccepted,
        OrderRejected,
        OrderSplit,
        OrderUpdated,
        OrderCancelled,
        OrderExpired,
    ),
    readers=("invoicing", "notifications", "payments"),
    description="Everything that happens to an order after it is placed.",
)
INVOICES_EVENTS = Topic(
    name="invoices.events",
    key="invoice id",
    writer="invoicing",
    events=(InvoiceIssued, InvoicePaid, InvoicePaymentFailed, InvoiceVoided),
    readers=("orders", "payments", "notifications"),
    description="Invoices issued to buyers and their payment outcome.",
)
PAYMENTS_EVENTS = Topic(
    name="payments.events",
    key="invoice id",
    writer="payments",
    events=(PaymentSucceeded, PaymentFailed, PaymentRefunded),
    readers=("invoicing",),
    description="Outcome of each card charge attempt.",
)

TOPICS: tuple[Topic, ...] = (ORDERS_PLACED, ORDERS_EVENTS, INVOICES_EVENTS, PAYMENTS_EVENTS)


def topic_of(event: Envelope) -> Topic:
    """The one topic an event type belongs to."""
    for topic in TOPICS:
        if type(event) in topic.events:
            return topic
    raise LookupError(f"{event.type} belongs to no topic")
