"""Fuzzing budget and the summary of how many cases each fuzzer ran."""

from __future__ import annotations

import io
import logging
import os
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from pythonjsonlogger.json import JsonFormatter

from .stack import Stack, running_stack

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0") or 0)
"""`make fuzz` sets it; `make test` runs the small default budgets below."""

CASES: Counter[str] = Counter()
"""Cases run per fuzzer (HTTP: per service; messages: per topic and consumer)."""


def budget(default: int) -> int:
    return FUZZ_EXAMPLES or default


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if CASES:
        terminalreporter.section("fuzz cases run")
        for name, count in sorted(CASES.items()):
            terminalreporter.write_line(f"{name}: {count}")


@pytest.fixture(scope="session")
def service_logs() -> Iterator[io.StringIO]:
    """Every log record the services write while the linked stack runs, as JSON lines."""
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    # The services run in their own thread; the tests' own HTTP clients log their URLs too.
    handler.addFilter(lambda record: record.threadName != threading.main_thread().name)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    quiet = {
        name: logging.getLogger(name).level
        for name in ("aiokafka", "pymongo", "faststream", "asyncio")
    }
    for name in quiet:
        logging.getLogger(name).setLevel(logging.INFO)
    try:
        yield sink
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        for name, previous in quiet.items():
            logging.getLogger(name).setLevel(previous)


@pytest.fixture(scope="session")
def linked_stack(infra: Any, service_logs: io.StringIO) -> Iterator[Stack]:
    """The four services wired to one another (one topic prefix), shared by the HTTP fuzzer,
    the limits and the secrets tests; its logs are captured from the start."""
    with running_stack(infra) as running:
        yield running
