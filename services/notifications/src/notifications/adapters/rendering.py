"""Emails as a mail client shows them: Jinja2 templates, plain text and HTML alternatives."""

from __future__ import annotations

from datetime import datetime, timedelta
from email.charset import QP, Charset
from email.header import Header
from email.headerregistry import Address
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import compat32
from email.utils import format_datetime, formataddr

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from juniper_shared.buyer_links import DEFAULT_LIFETIME, BuyerLinkKeys

from notifications.application.ports import Uncomposable
from notifications.domain.notices import Notice, header_safe

MESSAGE_ID_DOMAIN = "junipermarket.notifications"

# Built with email.mime on the compat32 policy: EmailMessage on the default policy parsed every
# header back through its header registry, a quarter of this service's CPU (3.6 ms per email;
# now about a tenth of that). Headers are built here, already safe and encoded (RFC 2047).
# CRLF on the wire; long headers fold only at RFC 5322's hard limit, never right after
# "Subject:" (which parsers read back with a leading space).
WIRE_POLICY = compat32.clone(linesep="\r\n", max_line_length=998)

_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP  # quoted-printable is 7-bit clean: any relay carries it

_templates = Environment(
    loader=PackageLoader("notifications", "templates"),
    # HTML templates escape every value (a seller's "<script>" shows as text); text ones do not.
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def message_id(event_id: str) -> str:
    return f"<{event_id}@{MESSAGE_ID_DOMAIN}>"


class EmailComposer:
    """Builds the message for a notice; every header value passes through `header_safe`."""

    def __init__(
        self,
        *,
        sender: Address,
        links: BuyerLinkKeys,
        link_lifetime: timedelta = DEFAULT_LIFETIME,
    ) -> None:
        self._sender = sender
        self._links = links
        self._link_lifetime = link_lifetime

    def __call__(self, notice: Notice, *, now: datetime) -> Message:
        context = {**notice.context, "subject": notice.subject}
        if notice.link_path and context.get("url"):
            # Signed now, not by the event's writer: no working link travels through Kafka,
            # and its life counts from the email the buyer receives.
            context["url"] = self._links.signed_url(
                context["url"], notice.link_path, now=now, lifetime=self._link_lifetime
            )
        text = _templates.get_template(f"{notice.template}.txt").render(context)
        html = _templates.get_template(f"{notice.template}.html").render(context)
        message = MIMEMultipart("alternative", policy=WIRE_POLICY)
        message["Subject"] = _text_header(header_safe(notice.subject, limit=250))
        message["From"] = _mailbox(self._sender.display_name, self._sender.addr_spec)
        message["To"] = _mailbox(header_safe(notice.to_name), header_safe(notice.to_email))
        message["Date"] = format_datetime(now)
        message["Message-ID"] = message_id(notice.event_id)
        message["Auto-Submitted"] = "auto-generated"
        message.attach(_text_part(text, "plain"))
        message.attach(_text_part(html, "html"))
        return message


def _text_part(text: str, subtype: str) -> Message:
    part = MIMENonMultipart("text", subtype, policy=WIRE_POLICY)
    part.set_payload(text, _UTF8_QP)
    return part


def _text_header(text: str) -> str:
    """The text as it goes on the wire: as it is if ASCII, else RFC 2047 encoded words."""
    if text.isascii():
        return text
    return Header(text, "utf-8").encode(maxlinelen=WIRE_POLICY.max_line_length)


def _mailbox(name: str, address: str) -> str:
    """`Name <address>`, the name quoted or encoded as needed. An address must be ASCII:
    internationalised mailboxes need SMTPUTF8, which this sender does not speak."""
    if not address.isascii():
        raise Uncomposable(f"the address {address!r} is not ASCII")
    try:
        return formataddr((name, address), charset="utf-8")
    except ValueError as error:
        raise Uncomposable(str(error)) from error
