"""Which SMTP faults are tried again (transient) and which are final (permanent)."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib
import pytest
from notifications.adapters.smtp import SmtpSession, is_permanent, is_transient
from notifications.domain.delivery import Outcome, Status
from notifications.settings import NotificationsSettings


def refused(*codes: int) -> aiosmtplib.SMTPRecipientsRefused:
    return aiosmtplib.SMTPRecipientsRefused(
        [
            aiosmtplib.SMTPRecipientRefused(code, "no", f"r{index}@example.com")
            for index, code in enumerate(codes)
        ]
    )


TRANSIENT = [
    ConnectionRefusedError(111, "Connection refused"),
    aiosmtplib.SMTPConnectError("cannot connect"),
    aiosmtplib.SMTPConnectTimeoutError("connect timed out"),
    aiosmtplib.SMTPReadTimeoutError("read timed out"),
    aiosmtplib.SMTPServerDisconnected("gone"),
    aiosmtplib.SMTPResponseException(421, "service not available, closing channel"),
    aiosmtplib.SMTPDataError(451, "local error in processing"),
    aiosmtplib.SMTPSenderRefused(452, "insufficient storage", "orders@junipermarket.test"),
    aiosmtplib.SMTPAuthenticationError(535, "bad credentials"),
    refused(450),
    refused(550, 451),
]
PERMANENT = [
    refused(550),
    refused(550, 553),
    aiosmtplib.SMTPDataError(554, "transaction failed"),
    aiosmtplib.SMTPSenderRefused(553, "sender not allowed", "orders@junipermarket.test"),
    aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported by this server"),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=repr)
def test_faults_that_may_pass_are_tried_again(error: BaseException) -> None:
    assert is_transient(error)
    assert not is_permanent(error)


@pytest.mark.parametrize("error", PERMANENT, ids=repr)
def test_refusals_for_good_are_not_tried_again(error: BaseException) -> None:
    assert is_permanent(error)
    assert not is_transient(error)


def test_a_bug_is_neither() -> None:
    assert not is_transient(KeyError("template"))
    assert not is_permanent(KeyError("template"))


class ScriptedSession(SmtpSession):
    """An SMTP session whose sends fail as scripted, then succeed."""

    def __init__(self, failures: list[BaseException], *, attempts: int = 3) -> None:
        super().__init__(
            NotificationsSettings(
                auth_jwt_secret="dev-only-secret",
                smtp_retry_attempts=attempts,
                smtp_retry_max_seconds=0.5,
            )
        )
        self.failures = failures
        self.tries = 0

    async def _send_once(self, message: EmailMessage, recipient: str) -> None:
        self.tries += 1
        if self.failures:
            raise self.failures.pop(0)


async def test_a_transient_fault_is_retried_until_the_email_goes_out() -> None:
    session = ScriptedSession([ConnectionRefusedError(111, "refused"), refused(451)])
    result = await session.send(EmailMessage(), recipient="ada@example.com")
    assert result.outcome is Outcome.SENT
    assert result.attempts == 3
    assert result.status is Status.SENT


async def test_retries_are_bounded_and_leave_the_email_pending() -> None:
    session = ScriptedSession([ConnectionRefusedError(111, "refused")] * 10, attempts=3)
    result = await session.send(EmailMessage(), recipient="ada@example.com")
    assert result.outcome is Outcome.DEFERRED
    assert result.status is Status.PENDING
    assert session.tries == 3
    assert "Connection refused" in result.error or "refused" in result.error


async def test_a_permanent_refusal_is_recorded_as_failed_without_retrying() -> None:
    session = ScriptedSession([refused(550)])
    result = await session.send(EmailMessage(), recipient="ada@example.com")
    assert result.outcome is Outcome.FAILED
    assert result.status is Status.FAILED
    assert session.tries == 1
    assert "550" in result.error


async def test_a_bug_is_raised_not_recorded() -> None:
    session = ScriptedSession([KeyError("template")])
    with pytest.raises(KeyError):
        await session.send(EmailMessage(), recipient="ada@example.com")
