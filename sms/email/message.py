"""Building one outbound email: multipart text + HTML, CAN-SPAM footer, RFC 8058 headers.

Marketing mail (campaign touches) carries the footer CAN-SPAM requires — who sent it,
their postal address, and a working opt-out — and the bulk-sender headers Gmail and
Yahoo require: `List-Unsubscribe: <https://…>` plus `List-Unsubscribe-Post:
List-Unsubscribe=One-Click` (RFC 8058), so a mail client can unsubscribe with one POST.
Replies and notifications get the plain footer-less form.

The message is serialised with lines up to RFC 5322's 998-octet limit for headers, so
the List-Unsubscribe URL (one token, no spaces) is never folded or RFC 2047-encoded.
"""

from __future__ import annotations

import html
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

# Header lines may run to RFC 5322's limit: a folded or encoded URL is ignored by Gmail.
WIRE_POLICY = SMTP.clone(max_line_length=998)
MARKETING_PURPOSES = frozenset({"marketing"})


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/email/unsubscribe?t={token}"


def build_message(*, from_addr: str, to_addr: str, subject: str, body: str, purpose: str,
                  business_name: str, postal_address: str, reply_to: str = "",
                  unsubscribe: str | None = None, at: datetime | None = None,
                  message_id: str | None = None) -> EmailMessage:
    """The email for one outbox row. `unsubscribe` (an https URL) is required for
    marketing; ValueError otherwise, so no commercial mail leaves without an opt-out."""
    marketing = purpose in MARKETING_PURPOSES
    if marketing and not unsubscribe:
        raise ValueError("marketing email needs an unsubscribe link")
    msg = EmailMessage(policy=WIRE_POLICY)
    msg["From"] = from_addr
    msg["To"] = to_addr
    msg["Subject"] = subject
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Date"] = format_datetime(at) if at is not None else format_datetime(
        datetime.now().astimezone())
    domain = from_addr.rsplit("@", 1)[-1].strip(">") or "localhost"
    msg["Message-ID"] = message_id or make_msgid(domain=domain)
    text = body.rstrip() + "\n"
    paragraphs = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>"
                         for p in body.strip().split("\n\n"))
    if marketing:
        assert unsubscribe is not None
        msg["List-Unsubscribe"] = f"<{unsubscribe}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        text += (f"\n--\n{business_name}\n{postal_address}\n"
                 f"Unsubscribe: {unsubscribe}\n")
        paragraphs += (
            '<hr><p style="font-size:12px;color:#666">'
            f"{html.escape(business_name)}<br>{html.escape(postal_address)}<br>"
            f'<a href="{html.escape(unsubscribe, quote=True)}">Unsubscribe</a></p>')
    msg.set_content(text)
    msg.add_alternative(f"<!doctype html><html><body>{paragraphs}</body></html>\n",
                        subtype="html")
    return msg
