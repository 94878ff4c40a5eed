"""Decision emails: a Notification rendered into a text + HTML message (DESIGN §7).

Templates are ``templates/emails/<kind>_subject.txt``, ``<kind>.txt`` and
``<kind>.html``. Partner-supplied text (organisation, contact and key names) is
untrusted: it is escaped in the HTML part (Django autoescaping), and every value
is flattened to one line first, so a line break in it can never start a new
header in the subject or the recipient's display name.
"""

from __future__ import annotations

import unicodedata
from email.errors import HeaderParseError
from email.headerregistry import Address

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from reviews.models import Notification

TEMPLATE_NAMES = {
    Notification.Kind.APPROVAL: "approval",
    Notification.Kind.DENIAL: "denial",
}
SUBJECT_MAX_LENGTH = 200
NAME_MAX_LENGTH = 120


class InvalidRecipient(ValueError):
    """The notification's address cannot be put on an email; the message says why."""


def one_line(value: object, *, max_length: int | None = None) -> str:
    """Text safe for a header: no control, format or line-break characters.

    CR, LF, NEL, U+2028/2029 and other control characters become spaces;
    invisible format characters (bidi overrides, zero-width) are dropped;
    runs of white space collapse to one space.
    """
    characters = []
    for character in str(value or ""):
        category = unicodedata.category(character)
        if category in ("Cc", "Zl", "Zp"):
            characters.append(" ")
        elif category != "Cf":
            characters.append(character)
    text = " ".join("".join(characters).split())
    if max_length is not None and len(text) > max_length:
        text = text[: max_length - 1].rstrip() + "…"
    return text


def recipient_address(email: str, name: str = "") -> str:
    """``"Display Name" <user@domain>`` with the name quoted as RFC 5322 requires.

    Django encodes a non-ASCII name as an RFC 2047 encoded-word and a non-ASCII
    domain as IDNA (punycode) when it builds the message; anymail does the same
    for the ESP's API.
    """
    address = one_line(email)
    username, at, domain = address.rpartition("@")
    if not (username and at and domain) or " " in address:
        raise InvalidRecipient(
            f"“{address}” is not a valid email address: correct the partner's "
            "contact email on the account, then resend the email."
        )
    try:
        # username/domain separately: Address(addr_spec=…) rejects non-ASCII domains.
        return str(
            Address(
                display_name=one_line(name, max_length=NAME_MAX_LENGTH),
                username=username,
                domain=domain,
            )
        )
    except (HeaderParseError, IndexError, ValueError) as error:
        raise InvalidRecipient(
            f"“{address}” is not a valid email address ({error}): correct the "
            "partner's contact email on the account, then resend the email."
        ) from error


def notification_context(notification: Notification) -> dict:
    """What the templates may use. Partner-supplied values are flattened to one line."""
    case = notification.case
    account = case.account
    key = case.key
    key_name = one_line(key.name, max_length=NAME_MAX_LENGTH)
    return {
        "kind": notification.kind,
        "reference": case.reference,
        "attempt": case.attempt,
        "organisation": one_line(account.name, max_length=NAME_MAX_LENGTH),
        "contact_name": one_line(notification.to_name, max_length=NAME_MAX_LENGTH),
        "key_id": one_line(key.platform_key_id),
        "key_name": key_name or "Production key",
        "key_hint": one_line(key.hint),
        "decided_at": case.decided_at,
        "activated_at": key.status_changed_at
        if key.status == key.Status.ACTIVE
        else None,
        "support_email": settings.SUPPORT_EMAIL,
        "support_url": settings.SUPPORT_URL,
    }


def notification_email(notification: Notification) -> EmailMultiAlternatives:
    """Render ``notification`` into a message with a text and an HTML part.

    Raises ``InvalidRecipient`` when the stored address cannot be used.
    """
    name = TEMPLATE_NAMES[notification.kind]
    context = notification_context(notification)
    subject = one_line(
        render_to_string(f"emails/{name}_subject.txt", context),
        max_length=SUBJECT_MAX_LENGTH,
    )
    text = render_to_string(f"emails/{name}.txt", context)
    html = render_to_string(f"emails/{name}.html", context)
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[recipient_address(notification.to_email, notification.to_name)],
        reply_to=[settings.SUPPORT_EMAIL],
        # RFC 3834: tells auto-responders not to answer a system email.
        headers={"Auto-Submitted": "auto-generated"},
    )
    message.attach_alternative(html, "text/html")
    # anymail: sent to the ESP (Postmark Tag/Metadata); other backends ignore them.
    message.tags = [notification.kind]
    message.metadata = {
        "notification_id": str(notification.pk),
        "case": context["reference"],
    }
    return message
