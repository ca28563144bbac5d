"""What the handlers need from the outside world."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from typing import Protocol

from notifications.domain.delivery import SendResult
from notifications.domain.notices import Notice


@dataclass(frozen=True)
class DeliveryView:
    event_id: str
    template: str
    to: str
    status: str
    attempts: int
    sent_at: datetime | None


class DeliveryLog(Protocol):
    """One record per email, `_id` the id of the event that caused it."""

    async def still_to_send(self, notices: Sequence[Notice]) -> list[Notice]:
        """The notices not yet sent or refused for good (one read for the batch)."""

    async def record(
        self, outcomes: Sequence[tuple[Notice, SendResult | None]], *, now: datetime
    ) -> None:
        """Store what each delivery came to (None: not tried yet, pending), in one write."""

    async def for_order(self, seller_id: str, order_id: str) -> list[DeliveryView]: ...


class MailSession(Protocol):
    async def send(self, message: Message, *, recipient: str) -> SendResult:
        """Send one message over this session's connection, retrying transient faults (bounded)."""


class Mailer(Protocol):
    def session(self) -> AbstractAsyncContextManager[MailSession]:
        """A connection to the mail server for one worker, opened on first use (or reused)."""


class Uncomposable(Exception):
    """No email can carry this notice as it is (e.g. a non-ASCII mailbox name): it fails for
    good instead of failing its batch again and again."""


class Composer(Protocol):
    def __call__(self, notice: Notice, *, now: datetime) -> Message:
        """The message for a notice; raises Uncomposable."""
