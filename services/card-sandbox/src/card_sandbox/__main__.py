"""`python -m card_sandbox`: the sandbox card processor on SANDBOX_PORT (default 8010)."""

from __future__ import annotations

import os

import uvicorn
from juniper_shared.logs import configure_logging

from card_sandbox.app import create_sandbox_app


def main() -> None:
    configure_logging("card-sandbox", os.environ.get("LOG_LEVEL", "INFO"))
    uvicorn.run(
        create_sandbox_app(),
        host=os.environ.get("SANDBOX_HOST", "127.0.0.1"),
        port=int(os.environ.get("SANDBOX_PORT", "8010")),
        log_config=None,
        access_log=False,
    )


main()
