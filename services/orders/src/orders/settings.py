"""The orders service's configuration (environment variables)."""

from __future__ import annotations

from juniper_shared.settings import ServiceSettings


class OrdersSettings(ServiceSettings):
    http_port: int = 8001
