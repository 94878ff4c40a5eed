"""Support in a real browser: find a denied case by the partner's email and read
the reasons to the partner; resend the decision email.

The case is denied through the real services (claim, checklist, deny), so the
denial email goes out through the after-commit hook and the eager task.
Screenshots are saved under tests/artifacts/screenshots/.
"""

from __future__ import annotations

import re

import pytest
from django.core import mail

from reviews.models import CaseEvent, DenialReason, Notification
from tests.browser.conftest import login
from tests.factories import make_case, make_user
from tests.reviews.test_admin_lookup import deny_with, partner

pytestmark = [
    pytest.mark.browser,
    # Committed data is visible to the live server; the seeded roles and
    # catalogue are restored after the flush.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_support_finds_denied_case_by_email_and_reads_reasons(
    live_server, page, screenshot
):
    make_user("Support", "stan@staff.example", "Stan Support")
    reviewer = make_user("Reviewer", "rita@staff.example", "Rita Reviewer")
    account = partner(
        name="Pantry Planner <Inc.>",
        platform_account_id="acct_1001",
        contact_email="dev@pantry-planner.example",
        contact_name="Sam Rivera",
        former=("sam@old-pantry.example",),
    )
    errors = DenialReason.objects.filter(
        criterion__code="error_handling", is_active=True
    ).first()
    help_desk = DenialReason.objects.filter(
        criterion__code="help_desk_account", is_active=True
    ).first()
    first = deny_with(
        make_case(account=account),
        reviewer,
        [(errors, "Requests to /idp/v1/retailers retry 429s at once, 40×/s.")],
    )
    case = deny_with(
        make_case(account=account, previous_case=first, attempt=2),
        reviewer,
        [
            (errors, "Still no backoff on 429 from POST /idp/v1/products/recipe."),
            (help_desk, "HD-55001 is not an Enterprise Help Desk account."),
        ],
    )
    email = case.notifications.get()
    assert email.status == Notification.Status.SENT  # sent after commit

    login(page, live_server, "stan@staff.example")
    page.get_by_role("link", name="Support lookup").first.click()
    page.wait_for_url(re.compile(r"/reviews/lookup/"))
    page.fill("input[name=q]", "Dev@Pantry-Planner.example")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r"/reviews/lookup/\?q="))

    partner_section = page.get_by_role("region", name=re.compile("Partner Pantry"))
    assert "Pantry Planner <Inc.>" in partner_section.locator("h2").inner_text()
    assert "sam@old-pantry.example" in partner_section.inner_text()
    cases = partner_section.locator("article.rd-case")
    assert cases.count() == 2
    assert case.reference in cases.nth(0).inner_text()  # newest first
    assert first.reference in cases.nth(1).inner_text()

    newest = cases.nth(0)
    reasons = newest.locator("ol.rd-reasons > li")
    assert reasons.count() == 2
    for reason in (errors, help_desk):
        item = reasons.filter(has_text=reason.title)
        assert item.is_visible()
        assert item.locator(".rd-say").inner_text().strip() == reason.support_text
    assert "Still no backoff on 429" in newest.inner_text()
    assert "HD-55001 is not an Enterprise Help Desk account." in newest.inner_text()
    assert "Denied by Rita Reviewer" in newest.locator(".rd-decision").inner_text()
    assert "Sent (no delivery report yet)" in newest.locator(".rd-email").inner_text()
    screenshot("support-01-lookup-by-email")

    mail.outbox.clear()
    newest.get_by_role("link", name="Resend decision email…").click()
    # One click sends nothing: the page asks, naming the address.
    page.wait_for_url(re.compile(rf"/reviews/notification/{email.pk}/resend/\?next="))
    assert page.get_by_test_id("resend-to").inner_text() == (
        "dev@pantry-planner.example"
    )
    assert len(mail.outbox) == 0
    screenshot("support-02-resend-confirm")
    page.get_by_test_id("resend-confirm-button").click()
    page.wait_for_url(re.compile(r"/reviews/lookup/\?q="))
    assert "is being sent again" in page.locator(".messagelist").inner_text()
    assert "dev@pantry-planner.example" in page.locator(".messagelist").inner_text()
    email.refresh_from_db()
    assert email.times_sent == 2
    assert len(mail.outbox) == 1
    assert CaseEvent.objects.filter(
        code="reviews.email.resend_requested", case=case
    ).exists()
    screenshot("support-03-resent")

    page.get_by_role("link", name="View email").first.click()
    page.wait_for_url(re.compile(rf"/reviews/notification/{email.pk}/change/"))
    assert case.reference in page.locator(".rd-email-body").first.inner_text()
    screenshot("support-04-email")

    Notification.objects.filter(pk=first.notifications.get().pk).update(
        status=Notification.Status.FAILED,
        last_error="AnymailRecipientsRefused: recipient refused",
    )
    page.get_by_role("link", name="Emails").first.click()
    page.wait_for_url(re.compile(r"/reviews/notification/$"))
    page.get_by_role("link", name="Failed or not delivered").click()
    page.wait_for_url(re.compile(r"/reviews/notification/\?problem=yes$"))
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert first.reference in rows.first.inner_text()
    assert "recipient refused" in rows.first.inner_text()
    screenshot("support-05-failed-emails")
