"""The delivery of one email: pending until the mail server takes it (sent) or refuses it (failed)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class Outcome(StrEnum):
    SENT = "sent"
    """The mail server accepted the message."""
    FAILED = "failed"
    """The mail server refused it for good (a 5xx reply): retrying cannot help."""
    DEFERRED = "deferred"
    """The mail server could not be reached or asked to try later, after bounded retries."""


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    attempts: int
    error: str = ""

    @property
    def status(self) -> Status:
        """The delivery's status after this result: a deferred email is still pending."""
        return {
            Outcome.SENT: Status.SENT,
            Outcome.FAILED: Status.FAILED,
            Outcome.DEFERRED: Status.PENDING,
        }[self.outcome]


def is_transient_reply(code: int) -> bool:
    """SMTP 4xx replies mean "try again later"; 5xx replies are final (RFC 5321 4.2.1)."""
    return 400 <= code < 500


def still_to_send(status: str) -> bool:
    """A duplicate event sends its email only if the earlier delivery never reached the server."""
    return status == Status.PENDING
