"""The invoicing service's configuration (environment variables)."""

from __future__ import annotations

from juniper_shared.settings import ServiceSettings


class InvoicingSettings(ServiceSettings):
    http_port: int = 8002
    invoicing_crash_after: str = ""
    """TEST-ONLY fault injection (`INVOICING_CRASH_AFTER`): the process exits at once (code 137)
    right after the named step of a confirm: `number_reserved` or `invoice_numbered`.
    Never set it in a real deployment."""
