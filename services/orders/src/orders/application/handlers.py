"""The seller's commands and the events the orders service reacts to."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from juniper_shared.batching import apply_per_key
from juniper_shared.clock import utc_now
from juniper_shared.contracts.events import (
    Envelope,
    InvoiceIssued,
    InvoicePaid,
    InvoicePaymentFailed,
    InvoiceVoided,
    OrderAccepted,
    OrderAcceptedData,
    OrderCancelled,
    OrderCancelledData,
    OrderExpired,
    OrderExpiredData,
    OrderPlaced,
    OrderReceived,
    OrderReceivedData,
    OrderRejected,
    OrderRejectedData,
    OrderSplit,
    OrderSplitData,
    OrderUpdated,
    OrderUpdatedData,
)
from juniper_shared.contracts.registry import ForgedEvent
from juniper_shared.errors import RetryLater
from juniper_shared.logs import correlation_id
from juniper_shared.request_marks import add_mark, check_marks, keyed_request
from juniper_shared.retries import retry_on_conflict

from orders.application.events import PRODUCER, snapshot
from orders.application.ports import (
    CustomerRepository,
    EventSink,
    OrderRepository,
    Page,
    SellerSettingsRepository,
    VersionConflict,
)
from orders.domain.customer import Customer, buyer_admitted
from orders.domain.errors import CustomerRequired, DomainError, InvalidState, NotFound
from orders.domain.expiry import SellerSettings, deadline
from orders.domain.order import InvoiceLink, Order, PaymentStatus, Status
from orders.domain.placing import place_order

log = logging.getLogger(__name__)


class PreconditionFailed(DomainError):
    code = "version_conflict"

    def __init__(self, current: int) -> None:
        super().__init__(f"the order changed; its current version is {current}")
        self.current = current


@dataclass(frozen=True)
class NewCustomer:
    name: str
    email: str


@dataclass(frozen=True)
class CustomerChoice:
    create: NewCustomer | None = None
    associate: str | None = None


Clock = Callable[[], datetime]

InvoiceEvent = InvoiceIssued | InvoicePaid | InvoicePaymentFailed | InvoiceVoided
UNGUARDED_RETRIES = 3
"""A write without If-Match that races another write is retried on fresh state this many times."""
EXPIRY_CONCURRENCY = 16
"""Expiry writes of one sweep page in flight at once (FerretDB holds a connection per write)."""


class Expiry(StrEnum):
    EXPIRED = "expired"
    LOST = "lost"
    """Accepted, rejected, edited or expired elsewhere between the page read and the write."""
    RESCHEDULED = "rescheduled"
    """Its deadline was computed with another window than the seller's; now it is not due."""
    FAILED = "failed"


@dataclass(frozen=True)
class SweepPage:
    """What one page of the expiry sweep found and did."""

    outcomes: list[Expiry]
    oldest_due: datetime | None
    """The deadline of the oldest due order on the page (the sweep's lag is now minus it)."""
    full: bool
    """Every order on the page was due: more may be waiting."""

    @property
    def expired(self) -> int:
        return self.outcomes.count(Expiry.EXPIRED)

    @property
    def progressed(self) -> bool:
        return any(outcome is not Expiry.FAILED for outcome in self.outcomes)


@dataclass
class OrdersHandlers:
    orders: OrderRepository
    customers: CustomerRepository
    seller_settings: SellerSettingsRepository
    publisher: EventSink
    clock: Clock = utc_now

    # --- ingestion ------------------------------------------------------------------------

    async def ingest_placed(self, placed: Sequence[OrderPlaced]) -> int:
        """Store a batch of placed orders once each and publish what happened to each.

        No outbox here: the consumer publishes before its offsets are committed, so a crash
        redelivers the batch and the events go out again with the same deterministic ids.
        Returns how many orders were new.
        """
        unique = list({event.data.order_id: event for event in placed}.values())
        sellers = {event.data.seller_id for event in unique}
        chosen = dict(
            zip(
                sellers,
                await asyncio.gather(*(self.seller_settings.get(s) for s in sellers)),
                strict=True,
            )
        )
        gated = {seller: chosen[seller].buyer_access_requires_approval for seller in sellers}
        pairs = {
            (event.data.seller_id, event.data.buyer.id)
            for event in unique
            if gated[event.data.seller_id]
        }
        linked = dict(
            zip(
                pairs,
                await asyncio.gather(*(self.customers.linked_customer(*pair) for pair in pairs)),
                strict=True,
            )
        )
        now = self.clock()
        orders: list[Order] = []
        causes: dict[str, OrderPlaced] = {}
        for event in unique:
            data = event.data
            customer_id = linked.get((data.seller_id, data.buyer.id))
            order = place_order(
                data,
                buyer_admitted=buyer_admitted(
                    requires_approval=gated[data.seller_id], buyer_linked=customer_id is not None
                ),
                now=now,
            )
            order.customer_id = customer_id
            window = chosen[data.seller_id].pending_order_expiry_days
            order.expires_at, order.expiry_days = deadline(order.placed_at, window), window
            orders.append(order)
            causes[order.order_id] = event
        new_ids = set(await self.orders.add_placed(orders))
        # An order already stored may be a redelivery after a crash that came before its event
        # was published: publish its first event again, as it was stored, unless it moved on.
        stored_before = [
            order
            for order in await asyncio.gather(
                *(self.orders.get(o.order_id) for o in orders if o.order_id not in new_ids)
            )
            if order is not None and order.version == 1
        ]
        events = [
            self._placed_event(order, cause=causes[order.order_id])
            for order in [o for o in orders if o.order_id in new_ids] + stored_before
        ]
        await self.publisher.publish(events)
        return len(new_ids)

    def _placed_event(self, order: Order, *, cause: OrderPlaced) -> Envelope:
        # Deterministic: a republished first event is recognisably the same event.
        event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"junipermarket:orders:{order.order_id}:placed")
        if order.status is Status.REJECTED:
            assert order.rejection is not None
            data: Any = OrderRejectedData(
                order=snapshot(order),
                reason=order.rejection["reason"],
                message=order.rejection["message"],
            )
            return _envelope(OrderRejected, order, data, cause=cause, event_id=event_id)
        data = OrderReceivedData(order=snapshot(order))
        return _envelope(OrderReceived, order, data, cause=cause, event_id=event_id)

    # --- reading --------------------------------------------------------------------------

    async def order(self, seller_id: str, order_id: str) -> Order:
        return await self._seller_order(seller_id, order_id, recent=False)

    async def _seller_order(self, seller_id: str, order_id: str, *, recent: bool) -> Order:
        order = await self.orders.get(order_id, recent=recent)
        if order is None or order.seller_id != seller_id:
            raise NotFound(f"order {order_id} not found")
        return order

    async def page(
        self, seller_id: str, *, status: str | None, page: int, page_size: int
    ) -> Page[Order]:
        return await self.orders.page(seller_id, status=status, page=page, page_size=page_size)

    # --- the seller's decisions -----------------------------------------------------------

    async def accept(
        self,
        seller_id: str,
        order_id: str,
        *,
        if_match: int | None,
        customer: CustomerChoice | None,
    ) -> Order:
        async def change(order: Order) -> list[Envelope]:
            order.ensure_can_accept()
            customer_id, created = await self._customer_for(order, customer)
            order.accept(now=self.clock(), customer_id=customer_id)
            return [
                _envelope(
                    OrderAccepted,
                    order,
                    OrderAcceptedData(order=snapshot(order), customer_created=created),
                )
            ]

        return await self._change(seller_id, order_id, if_match, change)

    async def reject(
        self, seller_id: str, order_id: str, *, if_match: int | None, reason: str, message: str
    ) -> Order:
        async def change(order: Order) -> list[Envelope]:
            order.reject(now=self.clock(), reason=reason, message=message)
            data = OrderRejectedData(order=snapshot(order), reason=reason, message=message)
            return [_envelope(OrderRejected, order, data)]

        return await self._change(seller_id, order_id, if_match, change)

    async def cancel(
        self, seller_id: str, order_id: str, *, if_match: int | None, message: str
    ) -> Order:
        async def change(order: Order) -> list[Envelope]:
            order.cancel(now=self.clock(), message=message)
            data = OrderCancelledData(order=snapshot(order), message=message)
            return [_envelope(OrderCancelled, order, data)]

        return await self._change(seller_id, order_id, if_match, change)

    async def change_quantities(
        self, seller_id: str, order_id: str, *, if_match: int | None, quantities: dict[str, int]
    ) -> Order:
        async def change(order: Order) -> list[Envelope]:
            order.change_quantities(quantities, now=self.clock())
            data = OrderUpdatedData(order=snapshot(order), changed_line_ids=sorted(quantities))
            return [_envelope(OrderUpdated, order, data)]

        return await self._change(seller_id, order_id, if_match, change)

    async def remove_items(
        self, seller_id: str, order_id: str, *, if_match: int | None, line_ids: list[str]
    ) -> Order:
        async def change(order: Order) -> list[Envelope]:
            order.remove_lines(line_ids, now=self.clock())
            data = OrderUpdatedData(order=snapshot(order), removed_line_ids=sorted(line_ids))
            return [_envelope(OrderUpdated, order, data)]

        return await self._change(seller_id, order_id, if_match, change)

    async def split(
        self, seller_id: str, order_id: str, *, if_match: int | None, line_ids: list[str]
    ) -> tuple[Order, Order]:
        """Move lines into a new pending order. Three writes, crash-safe in this order:
        the hidden new order, the parent with its event, then the new order is revealed."""
        children: list[Order] = []

        async def change(order: Order) -> list[Envelope]:
            child = order.split(line_ids, now=self.clock())
            await self.orders.add_split(child)
            children[:] = [child]
            data = OrderSplitData(
                parent=snapshot(order), new_order=snapshot(child), moved_line_ids=sorted(line_ids)
            )
            return [_envelope(OrderSplit, order, data)]

        # Not from the kept copy: a decision on an outdated one would leave a hidden order behind.
        parent = await self._change(seller_id, order_id, if_match, change, recent=False)
        await self.orders.reveal(children[0].order_id)
        return parent, children[0]

    # --- what invoicing tells us ----------------------------------------------------------

    async def on_invoice_events(self, events: Sequence[InvoiceEvent]) -> None:
        """Apply a batch: one order's events in their order, different orders at once."""
        await apply_per_key(events, lambda event: event.data.order_id, self.on_invoice_event)

    async def on_invoice_event(self, event: InvoiceEvent) -> None:
        """Keep the All Orders row's invoice link and payment status current (idempotent)."""
        try:
            # A seller edit or this very event may get there first: look again.
            await retry_on_conflict(
                lambda number: self._apply_invoice_event(event, recent=number == 1),
                conflict=VersionConflict,
                attempts=UNGUARDED_RETRIES + 2,
            )
        except VersionConflict:
            raise RetryLater(
                f"order {event.data.order_id} kept changing; the batch will be retried"
            ) from None

    async def _apply_invoice_event(self, event: InvoiceEvent, *, recent: bool) -> None:
        # The first try from the copy this process stored last (the guarded save checks it).
        order = await self.orders.get(event.data.order_id, recent=recent)
        if order is None:
            return  # not ours: an invoice for an order this service never stored
        if order.seller_id != event.seller_id:
            raise ForgedEvent(
                f"{event.type} of seller {event.seller_id!r} names order "
                f"{order.order_id} of another seller"
            )
        now = self.clock()
        if isinstance(event, InvoiceIssued):
            link = InvoiceLink(
                invoice_id=event.data.invoice_id,
                number=event.data.number,
                status="issued",
                url=event.data.url,
            )
            order.link_invoice(link, now=now)
        elif isinstance(event, InvoiceVoided):
            link = InvoiceLink(
                invoice_id=event.data.invoice_id,
                number=event.data.number or "",
                status="void",
                url=event.data.url,
            )
            order.void_invoice(link, now=now)
        elif isinstance(event, InvoicePaid):
            order.record_payment(PaymentStatus.PAID, now=now)
        else:
            order.record_payment(PaymentStatus.FAILED, now=now, reason=event.data.reason)
        order.version += 1
        await self.orders.save(order, [], processed_event_id=str(event.event_id))

    # --- expiry -----------------------------------------------------------------------------

    async def expire_due(self, *, limit: int) -> SweepPage:
        """Expire the due orders among the `limit` pending orders with the earliest deadlines.

        Each expiry is the order's own guarded write (pending, deadline passed, the version
        read): a crash mid-page loses nothing and a second sweeper expires nothing twice."""
        now = self.clock()
        page = await self.orders.pending_by_deadline(limit)
        due = [order for order in page if order.expires_at is None or order.expires_at <= now]
        sellers = {order.seller_id for order in due}
        windows = dict(
            zip(
                sellers,
                [
                    chosen.pending_order_expiry_days
                    for chosen in await asyncio.gather(
                        *(self.seller_settings.get(seller) for seller in sellers)
                    )
                ],
                strict=True,
            )
        )
        slots = asyncio.Semaphore(EXPIRY_CONCURRENCY)

        async def expire(order: Order) -> Expiry:
            async with slots:
                try:
                    return await self._expire(order, window=windows[order.seller_id], now=now)
                except Exception:
                    # One order's failure stays with it; the sweep goes on with the others.
                    log.exception("could not expire order %s", order.order_id)
                    return Expiry.FAILED

        deadlines = [order.expires_at for order in due if order.expires_at is not None]
        return SweepPage(
            outcomes=list(await asyncio.gather(*(expire(order) for order in due))),
            oldest_due=min(deadlines, default=now if due else None),
            full=len(page) == limit and len(due) == len(page),
        )

    async def oldest_due(self) -> datetime | None:
        """The deadline of the oldest pending order past it, if any."""
        first = await self.orders.pending_by_deadline(1)
        if not first:
            return None
        expires_at = first[0].expires_at
        if expires_at is None:
            return first[0].placed_at
        return expires_at if expires_at <= self.clock() else None

    async def _expire(self, order: Order, *, window: int, now: datetime) -> Expiry:
        if order.expires_at is None or order.expiry_days != window:
            # Computed with another window (a settings change raced this order's arrival) or
            # before there were windows: the seller's current window decides.
            moved = (
                deadline(order.placed_at, window)
                if order.expires_at is None
                else order.expires_at + timedelta(days=window - (order.expiry_days or window))
            )
            if not await self.orders.schedule(
                order.order_id, expires_at=moved, days=window, was_days=order.expiry_days
            ):
                return Expiry.LOST
            order.expires_at, order.expiry_days = moved, window
            if moved > now:
                return Expiry.RESCHEDULED
        order.version += 1
        order.expire(now=now)
        assert order.expires_at is not None
        data = OrderExpiredData(
            order=snapshot(order), expires_at=order.expires_at, split_into=order.split_into
        )
        # Deterministic: an order expires once, so its expiry is one event whoever sends it.
        event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"junipermarket:orders:{order.order_id}:expired")
        try:
            await self.orders.save(
                order, [_envelope(OrderExpired, order, data, event_id=event_id)], due_by=now
            )
        except VersionConflict:
            return Expiry.LOST
        return Expiry.EXPIRED

    # --- customers and settings -----------------------------------------------------------

    async def update_settings(
        self,
        seller_id: str,
        *,
        buyer_access_requires_approval: bool | None,
        pending_order_expiry_days: int | None,
    ) -> SellerSettings:
        """Store the seller's choices; a new expiry window moves every pending order's deadline.

        The deadlines move first and the setting is stored after, so a request retried after a
        crash between the two moves what is left; they move once more after, for orders that
        arrived meanwhile with the old window (the sweeper corrects any it still meets)."""
        current = await self.seller_settings.get(seller_id)
        chosen = SellerSettings(
            buyer_access_requires_approval=(
                current.buyer_access_requires_approval
                if buyer_access_requires_approval is None
                else buyer_access_requires_approval
            ),
            pending_order_expiry_days=(
                pending_order_expiry_days or current.pending_order_expiry_days
            ),
        )
        before, after = current.pending_order_expiry_days, chosen.pending_order_expiry_days
        if before != after:
            await self.orders.move_deadlines(seller_id, from_days=before, to_days=after)
        await self.seller_settings.save(seller_id, chosen)
        if before != after:
            await self.orders.move_deadlines(seller_id, from_days=before, to_days=after)
        return chosen

    async def create_customer(
        self, seller_id: str, *, customer_id: str, name: str, email: str, buyer_ids: list[str]
    ) -> Customer:
        customer = Customer(
            customer_id=customer_id, seller_id=seller_id, name=name, email=email, buyer_ids=[]
        )
        for buyer_id in buyer_ids:
            customer.link(buyer_id)
        await self.customers.save(customer, new=True)
        for buyer_id in customer.buyer_ids:
            await self.customers.link_buyer(seller_id, buyer_id, customer.customer_id)
        return customer

    async def customer_page(self, seller_id: str, *, page: int, page_size: int) -> Page[Customer]:
        return await self.customers.page(seller_id, page=page, page_size=page_size)

    async def customer(self, seller_id: str, customer_id: str) -> Customer:
        customer = await self.customers.get(customer_id)
        if customer is None or customer.seller_id != seller_id:
            raise NotFound(f"customer {customer_id} not found")
        return customer

    async def _customer_for(
        self, order: Order, choice: CustomerChoice | None
    ) -> tuple[str | None, bool]:
        """The customer an accepted order belongs to; links an unknown buyer as the seller chose."""
        buyer_id = str(order.buyer["id"])
        linked = await self.customers.linked_customer(order.seller_id, buyer_id)
        if linked is not None:
            return linked, False
        if choice is None or (choice.create is None and choice.associate is None):
            raise CustomerRequired(
                "this buyer has no relationship with you yet: create a new customer or "
                "associate the buyer with an existing one"
            )
        if choice.create is not None:
            # A deterministic id makes a retried accept reuse the customer it already created.
            customer = Customer(
                customer_id=f"cus-{order.order_id}",
                seller_id=order.seller_id,
                name=choice.create.name,
                email=choice.create.email,
                buyer_ids=[buyer_id],
            )
            await self.customers.save(customer, new=True)
            created = True
        else:
            assert choice.associate is not None
            customer = await self.customer(order.seller_id, choice.associate)
            if customer.link(buyer_id):
                await self.customers.save(customer, new=False)
            created = False
        await self.customers.link_buyer(order.seller_id, buyer_id, customer.customer_id)
        return customer.customer_id, created

    async def _change(
        self,
        seller_id: str,
        order_id: str,
        if_match: int | None,
        change: Callable[[Order], Awaitable[list[Envelope]]],
        *,
        recent: bool = True,
    ) -> Order:
        """Load, check the precondition, apply, and store state, events and the request's
        Idempotency-Key mark in one write.

        With `recent`, the first try starts from the copy of the order this process stored or
        read last, when it has one: no load, so the change is one round trip. Only the guarded
        write may trust that copy; if it misses, or the decision refuses, the copy may have been
        outdated by another replica, and the change is decided again on the stored order.
        """
        if recent:
            try:
                return await self._try_change(seller_id, order_id, if_match, change, recent=True)
            except (DomainError, VersionConflict):
                pass
        # With If-Match, one attempt; but a keyed request that lost the race to its own retry
        # loads once more to find its mark.
        guarded_attempts = 2 if keyed_request() else 1
        try:
            return await retry_on_conflict(
                lambda _: self._try_change(seller_id, order_id, if_match, change, recent=False),
                conflict=VersionConflict,
                attempts=UNGUARDED_RETRIES if if_match is None else guarded_attempts,
            )
        except VersionConflict as conflict:
            # `current` is None only for an order gone, and orders are never deleted.
            raise PreconditionFailed(conflict.current or 0) from conflict

    async def _try_change(
        self,
        seller_id: str,
        order_id: str,
        if_match: int | None,
        change: Callable[[Order], Awaitable[list[Envelope]]],
        *,
        recent: bool,
    ) -> Order:
        order = await self._seller_order(seller_id, order_id, recent=recent)
        check_marks(order.request_marks)
        if order.status is Status.EXPIRED:
            # Nothing can happen to an expired order, whichever version the seller saw.
            raise InvalidState(f"order {order_id} expired: it was not accepted in time")
        if if_match is not None and order.version != if_match:
            raise PreconditionFailed(order.version)
        # Bumped first so the events' snapshots carry the version being stored.
        order.version += 1
        events = await change(order)
        order.request_marks = add_mark(order.request_marks)
        await self.orders.save(order, events)
        return order


def _envelope(
    kind: type[Envelope],
    order: Order,
    data: Any,
    *,
    cause: Envelope | None = None,
    event_id: uuid.UUID | None = None,
) -> Envelope:
    return kind(  # type: ignore[call-arg]  # `type` defaults per event class
        event_id=event_id or uuid.uuid4(),
        producer=PRODUCER,
        seller_id=order.seller_id,
        correlation_id=(cause.correlation_id if cause else "") or correlation_id.get(),
        causation_id=str(cause.event_id) if cause else None,
        data=data,
    )
