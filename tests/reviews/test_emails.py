"""Rendering of decision emails (DESIGN §7), checked on the real message bytes."""

from __future__ import annotations

import email
import email.policy

import pytest
from anymail.backends.postmark import EmailBackend as PostmarkBackend
from django.core import mail
from django.test import override_settings

from reviews.emails import InvalidRecipient, notification_email, one_line
from reviews.models import ApiKey, Notification
from tests.factories import approve_case, deny_case, make_account, make_case

pytestmark = pytest.mark.django_db

SUPPORT = {
    "SUPPORT_EMAIL": "technical-support@platform.example",
    "SUPPORT_URL": "https://support.platform.example/idp",
}

MARKUP_ORGANISATION = "<b>Bold</b> Foods <script>alert('x')</script>"
MARKUP_CONTACT = "<img src=x onerror=alert(1)>"
MARKUP_KEY = "<i>prod</i> & <u>key</u>"


def decided(reviewer, *, deny: bool = False, key_name="Production", **account):
    """A decided case and its (pending) notification, rendered."""
    account_obj = make_account(**account)
    key = ApiKey.objects.create(
        platform_key_id=f"pk_{account_obj.platform_account_id}",
        account=account_obj,
        name=key_name,
        last4="9f2c",
    )
    case = make_case(account=account_obj, key=key)
    if deny:
        deny_case(case, reviewer, detail="Requests to /recipe lack the Accept header")
    else:
        approve_case(case, reviewer)
    notification = Notification.objects.select_related("case__account").get(case=case)
    return case, notification, notification_email(notification)


def parts(message):
    html = [content for content, mimetype in message.alternatives]
    assert [mimetype for _, mimetype in message.alternatives] == ["text/html"]
    return message.body, html[0]


def parsed(message):
    """The message as a mail client reads it, from the bytes Django produces."""
    return email.message_from_bytes(
        message.message().as_bytes(), policy=email.policy.default
    )


def header_block(message) -> bytes:
    return message.message().as_bytes().split(b"\n\n", 1)[0]


class TestApprovalEmail:
    def test_names_the_key_its_activation_and_next_steps(self, reviewer):
        with override_settings(**SUPPORT):
            case, notification, message = decided(
                reviewer,
                name="Pantry Planner Inc.",
                contact_name="Sam Rivera",
                contact_email="dev@pantry-planner.example",
            )
        case.key.refresh_from_db()
        activated = case.key.status_changed_at.strftime("%H:%M")
        text, html = parts(message)

        assert message.subject == (
            f"Your production API key Production (…9f2c) is active – {case.reference}"
        )
        assert message.to == ["Sam Rivera <dev@pantry-planner.example>"]
        assert message.reply_to == ["technical-support@platform.example"]
        for body in (text, html):
            assert "Hello Sam Rivera," in body
            assert "Pantry Planner Inc." in body
            assert "Production (…9f2c)" in body
            assert case.key.platform_key_id in body
            assert activated in body and "UTC" in body
            assert "https://connect.instacart.com" in body  # what to do next
            assert case.reference in body
            assert "technical-support@platform.example" in body
        assert "<strong>Pantry Planner Inc.</strong>" in html
        assert html.lstrip().startswith("<!DOCTYPE html>")

    def test_without_contact_name_greets_plainly(self, reviewer):
        _, _, message = decided(reviewer, contact_name="")
        text, html = parts(message)
        assert text.startswith("Hello,\n")
        assert "<p>Hello,</p>" in html
        assert "<" not in message.to[0]


class TestDenialEmail:
    def test_gives_reference_and_support_but_not_the_reasons(self, reviewer):
        with override_settings(**SUPPORT):
            case, notification, message = decided(
                reviewer, deny=True, contact_name="Sam Rivera"
            )
        reasons = list(case.denial_reasons.all())
        assert reasons
        text, html = parts(message)

        assert message.subject == (
            f"Your production API key request {case.reference} was not approved"
        )
        for body in (text, html):
            assert case.reference in body
            assert "technical-support@platform.example" in body
            assert "https://support.platform.example/idp" in body
            assert "Technical Support has the detailed list" in body
            for reason in reasons:
                # Support reads the reasons to the partner; the email never lists them.
                assert reason.title not in body
                assert reason.support_text not in body
                assert reason.detail not in body
        assert 'href="mailto:technical-support@platform.example"' in html


class TestPartnerTextIsNeverMarkup:
    def test_markup_is_escaped_in_html_and_plain_in_text(self, reviewer):
        _, _, message = decided(
            reviewer,
            key_name=MARKUP_KEY,
            name=MARKUP_ORGANISATION,
            contact_name=MARKUP_CONTACT,
        )
        text, html = parts(message)

        assert (
            "&lt;b&gt;Bold&lt;/b&gt; Foods &lt;script&gt;alert(&#x27;x&#x27;)" in html
        )
        assert "&lt;img src=x onerror=alert(1)&gt;" in html
        assert "&lt;i&gt;prod&lt;/i&gt; &amp; &lt;u&gt;key&lt;/u&gt;" in html
        for raw in ("<script", "<img", "<b>Bold", "<i>prod", "onerror=alert(1)>"):
            assert raw not in html

        assert MARKUP_ORGANISATION in text
        assert f"Hello {MARKUP_CONTACT}," in text
        assert MARKUP_KEY in text
        assert "&lt;" not in text and "&amp;" not in text
        # The subject is a header, not HTML: the key name appears as typed.
        assert MARKUP_KEY in message.subject

        decoded = parsed(message)
        html_part = decoded.get_body(preferencelist=("html",)).get_content()
        text_part = decoded.get_body(preferencelist=("plain",)).get_content()
        assert "&lt;script&gt;" in html_part and "<script" not in html_part
        assert MARKUP_ORGANISATION in text_part

    @pytest.mark.parametrize("deny", [False, True], ids=["approval", "denial"])
    def test_line_breaks_never_become_headers(self, reviewer, deny):
        injected = "Acme\r\nBcc: victim@elsewhere.example"
        _, notification, message = decided(
            reviewer,
            deny=deny,
            key_name="Prod\r\nX-Extra: 1\nBcc: victim@elsewhere.example",
            name=injected,
            contact_name="Eve\r\nBcc: victim@elsewhere.example\u2028X-Extra: 2",
            contact_email="eve@acme.example",
        )
        headers = header_block(message)
        decoded = parsed(message)

        assert decoded["Bcc"] is None
        assert decoded["X-Extra"] is None
        assert set(decoded.keys()) == {
            "Content-Type",
            "MIME-Version",
            "Subject",
            "From",
            "To",
            "Reply-To",
            "Date",
            "Message-ID",
            "Auto-Submitted",
        }
        for line in headers.splitlines():
            assert not line.lower().startswith((b"bcc", b"x-extra"))
        assert "\n" not in message.subject and "\r" not in message.subject
        assert len(message.recipients()) == 1
        (to,) = decoded["To"].addresses
        assert to.addr_spec == "eve@acme.example"
        assert to.display_name == "Eve Bcc: victim@elsewhere.example X-Extra: 2"
        text, html = parts(message)
        assert "Acme Bcc: victim@elsewhere.example" in text

        # Handed to the provider (anymail's test ESP), still one recipient only.
        mail.outbox = []
        message.send()
        params = mail.outbox[0].anymail_test_params
        assert [address.addr_spec for address in params["to"]] == ["eve@acme.example"]
        assert params["bcc"] == [] and params["cc"] == []
        assert params["extra_headers"] == {"Auto-Submitted": "auto-generated"}

    def test_one_line_removes_every_kind_of_line_break(self):
        raw = "a\rb\nc\r\nd\x0be\x0cf\x1cg\x85h\u2028i\u2029j\x00k\u202el\u200bm\tn"
        assert one_line(raw) == "a b c d e f g h i j klm n"
        assert one_line("x" * 50, max_length=10) == "xxxxxxxxx…"


class TestInternationalAddresses:
    def test_non_ascii_name_and_idn_domain_are_encoded(self, reviewer):
        _, notification, message = decided(
            reviewer,
            name="Café Ñandú Recetas S.A.",
            contact_name="José Müller-Ørsted",
            contact_email="jose.muller@bücher.example",
        )
        headers = header_block(message)
        to_line = headers.split(b"\nTo: ", 1)[1].split(b"\nDate:", 1)[0]

        headers.decode("ascii")  # every header is 7-bit on the wire
        assert b"=?utf-8?" in to_line  # RFC 2047 encoded-word for the name
        assert b"<jose.muller@xn--bcher-kva.example>" in to_line  # IDNA domain
        (to,) = parsed(message)["To"].addresses
        assert to.display_name == "José Müller-Ørsted"
        assert to.addr_spec == "jose.muller@xn--bcher-kva.example"
        text, html = parts(message)
        assert "Hello José Müller-Ørsted," in text
        assert "Café Ñandú Recetas S.A." in html

        # What anymail hands Postmark's API: UTF-8 name, IDNA domain.
        payload = PostmarkBackend(server_token="test").build_message_payload(
            message, {}
        )
        assert payload.data["To"] == (
            "José Müller-Ørsted <jose.muller@xn--bcher-kva.example>"
        )

    def test_names_with_specials_are_quoted(self, reviewer):
        _, _, message = decided(reviewer, contact_name='Doe, "JD" Jane')
        (to,) = parsed(message)["To"].addresses
        assert to.display_name == 'Doe, "JD" Jane'
        assert len(message.recipients()) == 1

    def test_an_unusable_address_is_refused_with_a_clear_message(self, reviewer):
        _, notification, _ = decided(reviewer)
        notification.to_email = "not an address"
        with pytest.raises(InvalidRecipient, match="correct the partner's contact"):
            notification_email(notification)
