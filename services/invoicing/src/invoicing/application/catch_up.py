"""Previews that wait for the read model: woken by this process's own consumer, not by polling."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Iterable

from invoicing.domain.order import InvoiceableOrder


class OrderVersions:
    """Lets a preview wait until `orders.events` brought an order to the version the seller saw.

    The consumer calls `seen` with each batch's newest snapshots; a waiter gets the snapshot
    itself, so catching up costs no database round trip. Waits are bounded: when another
    replica consumes that order's partition, nothing here wakes and the caller reads again.

    The newest snapshots seen are remembered (the last RECENT orders): a preview that read the
    database just before the consumer stored the version it wants, and so asks to wait just
    after `seen` ran, is answered at once instead of waiting out its timeout.
    """

    RECENT = 1024
    """About ten seconds of orders at 100 orders/s: a preview follows the last edit closely."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[tuple[int, asyncio.Future[InvoiceableOrder]]]] = {}
        self._recent: OrderedDict[str, InvoiceableOrder] = OrderedDict()

    def seen(self, orders: Iterable[InvoiceableOrder]) -> None:
        for order in orders:
            self._remember(order)
            waiters = self._waiting.get(order.order_id)
            if not waiters:
                continue
            still = []
            for version, future in waiters:
                if future.done():
                    continue
                if order.version >= version:
                    future.set_result(order)
                else:
                    still.append((version, future))
            if still:
                self._waiting[order.order_id] = still
            else:
                del self._waiting[order.order_id]

    def follows(self, order_id: str) -> bool:
        """Whether this process's consumer stored a version of the order lately: then the
        order's partition is most likely its own, and the next versions arrive here first."""
        return order_id in self._recent

    def recent(self, order_id: str, version: int) -> InvoiceableOrder | None:
        """The newest snapshot this process stored of the order, if it is at `version` or newer."""
        known = self._recent.get(order_id)
        return known if known is not None and known.version >= version else None

    async def wait(self, order_id: str, version: int, *, timeout: float) -> InvoiceableOrder | None:
        """The order at `version` or newer once this process stores it; None after `timeout`."""
        recent = self.recent(order_id, version)
        if recent is not None:
            return recent
        future: asyncio.Future[InvoiceableOrder] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(order_id, []).append((version, future))
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None
        finally:
            waiters = self._waiting.get(order_id)
            if waiters is not None:
                with contextlib.suppress(ValueError):
                    waiters.remove((version, future))
                if not waiters:
                    del self._waiting[order_id]

    def _remember(self, order: InvoiceableOrder) -> None:
        known = self._recent.get(order.order_id)
        if known is not None and known.version >= order.version:
            return
        self._recent[order.order_id] = order
        self._recent.move_to_end(order.order_id)
        if len(self._recent) > self.RECENT:
            self._recent.popitem(last=False)
