"""Emails as a mail client shows them: Jinja2 templates, plain text and HTML alternatives."""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from notifications.domain.notices import Notice, header_safe

MESSAGE_ID_DOMAIN = "junipermarket.notifications"

# The default policy folds headers at 78 columns, and for a long first word it folds right after
# "Subject:", which parsers then read back with a leading space. Subjects here are at most 250
# characters, so fold only at RFC 5322's hard limit.
POLICY = default_policy.clone(max_line_length=998)

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

    def __init__(self, *, sender: Address) -> None:
        self._sender = sender

    def __call__(self, notice: Notice, *, now: datetime) -> EmailMessage:
        context = {**notice.context, "subject": notice.subject}
        text = _templates.get_template(f"{notice.template}.txt").render(context)
        html = _templates.get_template(f"{notice.template}.html").render(context)
        message = EmailMessage(policy=POLICY)
        message["Subject"] = header_safe(notice.subject, limit=250)
        message["From"] = self._sender
        message["To"] = Address(
            display_name=header_safe(notice.to_name), addr_spec=header_safe(notice.to_email)
        )
        message["Date"] = format_datetime(now)
        message["Message-ID"] = message_id(notice.event_id)
        message["Auto-Submitted"] = "auto-generated"
        # Quoted-printable is 7-bit clean: any relay carries it, 8BITMIME or not.
        message.set_content(text, cte="quoted-printable")
        message.add_alternative(html, subtype="html", cte="quoted-printable")
        return message
