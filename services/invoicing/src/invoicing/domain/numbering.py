"""Gapless per-seller invoice numbers without transactions: a two-step reservation.

The seller's counter holds the next number and at most one `pending` reservation naming the
invoice that holds it. Confirming is: reserve (counter), write the number into the invoice
(with its `invoice.issued` event), release (counter). Whoever finds a reservation pending
settles it first, so a crash between any two steps leaves neither a gap nor a duplicate.

The release is lazy: a confirm leaves its reservation pending once the invoice holds the
number, and the seller's next confirm releases it in the same counter write that takes the
next number. Two counter writes per invoice would otherwise be one more round trip than the
numbering needs; a pending reservation whose invoice holds its number is already settled.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from invoicing.domain.invoice import InvoiceStatus


class CounterBusy(Exception):
    """Another confirm holds the seller's reservation; settle it first."""


@dataclass(frozen=True)
class Reservation:
    invoice_id: str
    sequence: int


@dataclass
class NumberCounter:
    """One per seller. Every change bumps `version`; writes are guarded by the version read."""

    seller_id: str
    next: int = 1
    pending: Reservation | None = None
    version: int = 0

    def reserve(self, invoice_id: str) -> Reservation:
        if self.pending is not None:
            raise CounterBusy(f"number {self.pending.sequence} is pending")
        self.pending = Reservation(invoice_id, self.next)
        self.next += 1
        self.version += 1
        return self.pending

    def release(self, reservation: Reservation) -> None:
        """The invoice holds the number: the reservation is done."""
        self._require(reservation)
        self.pending = None
        self.version += 1

    def give_back(self, reservation: Reservation) -> None:
        """The invoice cannot take the number (issued meanwhile with another one): undo it.

        Safe because nobody can reserve while `pending` is set, so it is still the last number.
        """
        self._require(reservation)
        self.pending = None
        self.next = reservation.sequence
        self.version += 1

    def _require(self, reservation: Reservation) -> None:
        if self.pending != reservation:
            raise ValueError(f"{reservation} is not the pending reservation")


@dataclass(frozen=True)
class Settle:
    """Complete a pending reservation (ours or someone else's) before anything else."""

    reservation: Reservation


@dataclass(frozen=True)
class Reserve:
    """Nothing pending: take the next number for this invoice."""


NextStep = Settle | Reserve


def next_step(counter: NumberCounter) -> NextStep:
    if counter.pending is not None:
        return Settle(counter.pending)
    return Reserve()


class Settlement(StrEnum):
    WRITE = "write"
    """The invoice is still a draft: write the reserved number into it, then release."""
    RELEASE = "release"
    """The invoice already holds the reserved number: only release the reservation."""
    GIVE_BACK = "give_back"
    """The invoice got another number or cannot be issued: return the number to the counter."""


def settlement(
    reservation: Reservation,
    *,
    status: InvoiceStatus | None,
    sequence: int | None,
    issuable: bool = True,
) -> Settlement:
    """What to do with a pending reservation, given the invoice it names as stored now
    (`issuable`: whether its amounts allow issuing it)."""
    if sequence == reservation.sequence:
        return Settlement.RELEASE
    if status is InvoiceStatus.DRAFT and issuable:
        return Settlement.WRITE
    return Settlement.GIVE_BACK
