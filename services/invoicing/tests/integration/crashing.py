"""`python crashing.py STEP`: the invoicing service, except that it dies at once (exit code
137, as a killed process would) at one step of a confirm: `number_chosen`, when the write of a
numbered invoice is about to go out, or `invoice_numbered`, right after it landed. The crash is
put into the invoice repository here, so the service itself carries no crash switch."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from invoicing.adapters.mongo import MongoInvoices
from invoicing.bootstrap import SERVICE, build_app
from invoicing.domain.invoice import Invoice
from invoicing.settings import InvoicingSettings
from juniper_shared.contracts.events import Envelope
from juniper_shared.http import run_service

log = logging.getLogger(__name__)


def crash_at(step: str) -> None:
    stored = MongoInvoices.save

    def crash() -> None:
        log.warning("crashing at %s (test fault injection)", step)
        os._exit(137)

    async def save(
        self: MongoInvoices, invoice: Invoice, events: Sequence[Envelope], *, previous_version: int
    ) -> bool:
        numbered = invoice.sequence is not None
        if numbered and step == "number_chosen":
            crash()
        saved = await stored(self, invoice, events, previous_version=previous_version)
        if numbered and saved and step == "invoice_numbered":
            crash()
        return saved

    MongoInvoices.save = save  # type: ignore[method-assign]


if __name__ == "__main__":
    crash_at(sys.argv[1])
    run_service(SERVICE, InvoicingSettings(), build_app)
