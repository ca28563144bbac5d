"""A sandbox card processor: a real HTTP server with test tokens, faults and Idempotency-Key replay.

Run it with `python -m card_sandbox` (port from `SANDBOX_PORT`, default 8010).
"""

from card_sandbox.app import Sandbox, create_sandbox_app

__all__ = ["Sandbox", "create_sandbox_app"]
