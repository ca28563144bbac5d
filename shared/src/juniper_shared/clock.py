"""The services' clock."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now, to the millisecond: what the database keeps of a date (BSON), so the answer to a
    write shows the same times as every later read of what it stored."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond - now.microsecond % 1000)
