"""`python crashing.py STEP`: the invoicing service, except that it dies at once (exit code
137, as a killed process would) right after STEP of a confirm (`number_chosen`, before its
write, or `invoice_numbered`, after it). The fault point is injected here, so the service
itself carries no crash switch."""

from __future__ import annotations

import logging
import os
import sys

from invoicing.application.numbering import FaultPoint
from invoicing.bootstrap import SERVICE, build_app
from invoicing.settings import InvoicingSettings
from juniper_shared.http import run_service

log = logging.getLogger(__name__)


def crash_at(point: str) -> FaultPoint:
    def fault(reached: str) -> None:
        if reached == point:
            log.warning("crashing after %s (test fault injection)", point)
            os._exit(137)

    return fault


if __name__ == "__main__":
    step = sys.argv[1]
    run_service(
        SERVICE, InvoicingSettings(), lambda settings: build_app(settings, fault=crash_at(step))
    )
