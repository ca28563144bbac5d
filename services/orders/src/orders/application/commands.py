"""The seller's commands: reading and changing orders, customers and settings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from juniper_shared.clock import utc_now
from juniper_shared.contracts.events import (
    Envelope,
    OrderAccepted,
    OrderAcceptedData,
    OrderCancelled,
    OrderCancelledData,
    OrderRejected,
    OrderRejectedData,
    OrderSplit,
    OrderSplitData,
    OrderUpdated,
    OrderUpdatedData,
)
from juniper_shared.request_marks import RequestMark, add_mark, check_marks
from juniper_shared.retries import retry_on_conflict

from orders.application.events import envelope, snapshot
from orders.application.ports import (
    Clock,
    CustomerRepository,
    OrderRepository,
    Page,
    SellerSettingsRepository,
    VersionConflict,
)
from orders.domain.customer import Customer
from orders.domain.errors import CustomerRequired, DomainError, InvalidState, NotFound
from orders.domain.expiry import SellerSettings
from orders.domain.order import Order, Status


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


UNGUARDED_RETRIES = 3
"""A write without If-Match that races another write is retried on fresh state this many times."""


@dataclass
class SellerCommands:
    orders: OrderRepository
    customers: CustomerRepository
    seller_settings: SellerSettingsRepository
    clock: Clock = utc_now

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
        mark: RequestMark | None = None,
    ) -> Order:
        async def change(order: Order) -> list[Envelope]:
            order.ensure_can_accept()
            customer_id, created = await self._customer_for(order, customer)
            order.accept(now=self.clock(), customer_id=customer_id)
            return [
                envelope(
                    OrderAccepted,
                    order,
                    OrderAcceptedData(order=snapshot(order), customer_created=created),
                )
            ]

        return await self._change(seller_id, order_id, if_match, change, mark=mark)

    async def reject(
        self,
        seller_id: str,
        order_id: str,
        *,
        if_match: int | None,
        reason: str,
        message: str,
        mark: RequestMark | None = None,
    ) -> Order:
        async def change(order: Order) -> list[Envelope]:
            order.reject(now=self.clock(), reason=reason, message=message)
            data = OrderRejectedData(order=snapshot(order), reason=reason, message=message)
            return [envelope(OrderRejected, order, data)]

        return await self._change(seller_id, order_id, if_match, change, mark=mark)

    async def cancel(
        self,
        seller_id: str,
        order_id: str,
        *,
        if_match: int | None,
        message: str,
        mark: RequestMark | None = None,
    ) -> Order:
        async def change(order: Order) -> list[Envelope]:
            order.cancel(now=self.clock(), message=message)
            data = OrderCancelledData(order=snapshot(order), message=message)
            return [envelope(OrderCancelled, order, data)]

        return await self._change(seller_id, order_id, if_match, change, mark=mark)

    async def change_quantities(
        self,
        seller_id: str,
        order_id: str,
        *,
        if_match: int | None,
        quantities: dict[str, int],
        mark: RequestMark | None = None,
    ) -> Order:
        async def change(order: Order) -> list[Envelope]:
            order.change_quantities(quantities, now=self.clock())
            data = OrderUpdatedData(order=snapshot(order), changed_line_ids=sorted(quantities))
            return [envelope(OrderUpdated, order, data)]

        return await self._change(seller_id, order_id, if_match, change, mark=mark)

    async def remove_items(
        self,
        seller_id: str,
        order_id: str,
        *,
        if_match: int | None,
        line_ids: list[str],
        mark: RequestMark | None = None,
    ) -> Order:
        async def change(order: Order) -> list[Envelope]:
            order.remove_lines(line_ids, now=self.clock())
            data = OrderUpdatedData(order=snapshot(order), removed_line_ids=sorted(line_ids))
            return [envelope(OrderUpdated, order, data)]

        return await self._change(seller_id, order_id, if_match, change, mark=mark)

    async def split(
        self,
        seller_id: str,
        order_id: str,
        *,
        if_match: int | None,
        line_ids: list[str],
        mark: RequestMark | None = None,
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
            return [envelope(OrderSplit, order, data)]

        # Not from the kept copy: a decision on an outdated one would leave a hidden order behind.
        parent = await self._change(seller_id, order_id, if_match, change, mark=mark, recent=False)
        await self.orders.reveal(children[0].order_id)
        return parent, children[0]

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
        mark: RequestMark | None,
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
                return await self._try_change(
                    seller_id, order_id, if_match, change, mark=mark, recent=True
                )
            except (DomainError, VersionConflict):
                pass
        # With If-Match, one attempt; but a keyed request that lost the race to its own retry
        # loads once more to find its mark.
        guarded_attempts = 2 if mark is not None else 1
        try:
            return await retry_on_conflict(
                lambda _: self._try_change(
                    seller_id, order_id, if_match, change, mark=mark, recent=False
                ),
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
        mark: RequestMark | None,
        recent: bool,
    ) -> Order:
        order = await self._seller_order(seller_id, order_id, recent=recent)
        check_marks(order.request_marks, mark)
        if order.status is Status.EXPIRED:
            # Nothing can happen to an expired order, whichever version the seller saw.
            raise InvalidState(f"order {order_id} expired: it was not accepted in time")
        if if_match is not None and order.version != if_match:
            raise PreconditionFailed(order.version)
        # Bumped first so the events' snapshots carry the version being stored.
        order.version += 1
        events = await change(order)
        order.request_marks = add_mark(order.request_marks, mark)
        await self.orders.save(order, events)
        return order
