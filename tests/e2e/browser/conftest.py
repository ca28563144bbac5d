"""The seller console in a real browser, against the whole system as processes.

The four services, the sandbox and the buyer's inbox are the end-to-end stories' own system
(tests/e2e/conftest.py: one per session); the console runs beside them as its own process, and
Debian's chromium (installed by scripts/browser-deps.sh) drives it.
Screenshots go to JM_CONSOLE_SCREENSHOTS (`make screenshots` sets docs/console; otherwise
.local/console-screenshots, ignored by git, so a test run leaves the repository as it was).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from pathlib import Path

import httpx
import pytest
from juniper_shared.auth import issue_token
from juniper_testkit import free_port

from ...support.stack import JWT_SECRET, REPO, START_TIMEOUT, Process, Stack
from ..support import Seller
from .support import Browser, start_chromium

DEMO_SELLER = "console-demo"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed flow prints the console's log beside the services' (tests/e2e/conftest.py)."""
    report = yield
    console = getattr(item, "funcargs", {}).get("console")
    if report.failed and call.when == "call" and isinstance(console, Process):
        report.sections.append(("console log", console.log_tail()))
    return report


@pytest.fixture(scope="session")
def axe_source() -> str:
    """Chromium and chromedriver (apt) and axe-core (npm registry), installed when missing."""
    result = subprocess.run(
        ["bash", str(REPO / "scripts/browser-deps.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"scripts/browser-deps.sh failed:\n{result.stderr}", pytrace=False)
    return Path(result.stdout.strip().splitlines()[-1]).read_text()


@pytest.fixture(scope="session")
async def console(stack: Stack) -> AsyncIterator[Process]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CONSOLE_", "HTTP_"))},
        "HTTP_PORT": str(port),
        "ORDERS_URL": stack.url("orders"),
        "INVOICING_URL": stack.url("invoicing"),
        "PAYMENTS_URL": stack.url("payments"),
        "NOTIFICATIONS_URL": stack.url("notifications"),
        "AUTH_JWT_SECRET": JWT_SECRET,
        "CONSOLE_DEV_SIGN_IN": "true",
        "CONSOLE_DEV_SELLERS": DEMO_SELLER,
        "CONSOLE_SECURE_COOKIES": "false",
        "CONSOLE_POLL_SECONDS": "1",
    }
    log_path = stack.log_dir / "console.log"
    process = Process("console", "console", port, env, log_path)
    process.start()
    try:
        async with httpx.AsyncClient() as http:
            await process.wait_ready(http, time.monotonic() + START_TIMEOUT)
        yield process
    finally:
        process.terminate()
        await asyncio.to_thread(process.reap, time.monotonic() + 10)


@pytest.fixture(scope="session")
def browser(console: Process, axe_source: str) -> Iterator[Browser]:
    screenshots = Path(
        os.environ.get("JM_CONSOLE_SCREENSHOTS") or REPO / ".local" / "console-screenshots"
    )
    if not screenshots.is_absolute():
        screenshots = REPO / screenshots
    driver = start_chromium()
    try:
        yield Browser(driver, console.url, axe_source, screenshots)
    finally:
        driver.quit()


@pytest.fixture
def seller(new_seller: Callable[[], Seller], browser: Browser) -> Seller:
    """A seller of their own for each flow, signed in to the console in the browser."""
    who = new_seller()
    browser.sign_in_with_token(issue_token(who.seller_id, JWT_SECRET))
    return who
