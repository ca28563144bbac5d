"""Previews that wait for the read model: woken by this process's own consumer, not by polling."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from invoicing.domain.order import InvoiceableOrder


class OrderVersions:
    """Lets a preview wait until `orders.events` brought an order to the version the seller saw.

    The consumer calls `seen` with each batch's newest snapshots; a waiter gets the snapshot
    itself, so catching up costs no database round trip. Waits are bounded: when another
    replica consumes that order's partition, nothing here wakes and the caller reads again.
    """

    def __init__(self) -> None:
        self._waiting: dict[str, list[tuple[int, asyncio.Future[InvoiceableOrder]]]] = {}

    def seen(self, orders: Iterable[InvoiceableOrder]) -> None:
        for order in orders:
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

    async def wait(self, order_id: str, version: int, *, timeout: float) -> InvoiceableOrder | None:
        """The order at `version` or newer once this process stores it; None after `timeout`."""
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
