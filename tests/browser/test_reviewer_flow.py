"""A reviewer's day in a real browser: claim, check, approve or deny, see the email.

Runs the real stack in the live server thread: services, the after-commit hook,
the (eager) email task and the anymail test backend. Screenshots are saved under
tests/artifacts/screenshots/.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import DeveloperAccountEmail
from reviews.models import (
    ApiKey,
    CaseDenialReason,
    CheckResult,
    DenialReason,
    Notification,
    ReviewCase,
)
from tests.browser.conftest import SCREENSHOTS, login
from tests.factories import make_account, make_case, make_user

pytestmark = [
    pytest.mark.browser,
    # Committed data is visible to the live server; the seeded roles and
    # catalogue are restored after the flush.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

QUEUE = "/reviews/reviewcase/"


def _partner_case(name: str, email: str, *, days_old: int, affiliate: bool = False):
    account = make_account(name=name, contact_email=email, affiliate=affiliate)
    DeveloperAccountEmail.objects.create(account=account, email=email.lower())
    return make_case(
        account=account, submitted_at=timezone.now() - timedelta(days=days_old)
    )


def _mark_every_row(page, result_label: str) -> None:
    for row in page.locator("#checklist-form li.rd-check").all():
        row.locator("label.rd-seg", has_text=result_label).click()


def test_reviewer_claims_checks_approves_and_sees_the_email(
    live_server, page, screenshot
):
    make_user("Reviewer", "rita@staff.example", "Rita Reviewer")
    oldest = _partner_case(
        "Fresh Basket <b>Co</b>", "dev@freshbasket.example", days_old=3
    )
    newer = _partner_case(
        "Recipe Box", "dev@recipebox.example", days_old=1, affiliate=True
    )

    login(page, live_server, "rita@staff.example")
    page.goto(f"{live_server.url}{QUEUE}")
    assert page.get_by_role("heading", name="Review queue").is_visible()
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    assert oldest.reference in rows.nth(0).inner_text()  # oldest first
    assert newer.reference in rows.nth(1).inner_text()
    # Partner-supplied markup is shown as text.
    assert "Fresh Basket <b>Co</b>" in rows.nth(0).inner_text()
    screenshot("01-queue")

    page.get_by_test_id("claim-next").click()
    page.wait_for_url(re.compile(rf"/reviews/reviewcase/{oldest.pk}/change/$"))
    assert page.get_by_test_id("case-state").inner_text() == "In review"
    assert page.get_by_test_id("approve").is_disabled()
    assert "not checked yet" in page.get_by_test_id("approve-hint").inner_text().lower()
    screenshot("02-case-claimed")

    _mark_every_row(page, "Pass")
    page.locator("#checklist-form textarea").first.fill("Terms page reviewed")
    # Unsaved edits hold the decision buttons until the checklist is saved.
    assert page.locator(".rd-dirty-note").is_visible()
    page.get_by_test_id("save-checks").click()
    page.wait_for_load_state()
    assert "Checklist saved: 4 changes." in page.locator(".messagelist").inner_text()
    assert page.get_by_test_id("approve").is_enabled()
    screenshot("03-checklist-passed")

    page.get_by_test_id("approve").click()
    page.wait_for_load_state()
    assert page.get_by_test_id("case-state").inner_text() == "Approved"
    oldest.refresh_from_db()
    assert oldest.state == ReviewCase.State.APPROVED
    assert ApiKey.objects.get(pk=oldest.key_id).status == ApiKey.Status.ACTIVE
    notification = Notification.objects.get(case=oldest)
    assert notification.kind == Notification.Kind.APPROVAL
    # The decision email is on the case page, with its delivery status.
    emails = page.get_by_test_id("emails")
    assert "Approval" in emails.inner_text()
    assert "dev@freshbasket.example" in emails.inner_text()
    assert notification.get_status_display() in emails.inner_text()
    if notification.subject:
        assert notification.subject in emails.inner_text()
    if notification.body_text:
        emails.get_by_text("Show the email text").first.click()
        assert emails.locator("pre.rd-mail-body").first.is_visible()
    screenshot("04-case-approved-with-email")

    # The next case is one click away.
    page.get_by_test_id("claim-next").first.click()
    page.wait_for_url(re.compile(rf"/reviews/reviewcase/{newer.pk}/change/$"))
    newer.refresh_from_db()
    assert newer.state == ReviewCase.State.IN_REVIEW


def test_reviewer_denies_with_reasons(live_server, page, screenshot):
    make_user("Reviewer", "rob@staff.example", "Rob Reviewer")
    case = _partner_case("Pantry Pal", "ops@pantrypal.example", days_old=2)

    login(page, live_server, "rob@staff.example")
    page.get_by_test_id("nav-claim-next").click()
    page.wait_for_url(re.compile(rf"/reviews/reviewcase/{case.pk}/change/$"))

    _mark_every_row(page, "Pass")
    failing = page.locator(
        '#checklist-form li.rd-check[data-criterion="error_handling"]'
    )
    failing.locator("label.rd-seg", has_text="Fail").click()
    failing.locator("textarea").fill("App crashes on HTTP 503; no backoff on 429.")
    page.get_by_test_id("save-checks").click()
    page.wait_for_load_state()
    assert page.get_by_test_id("approve").is_disabled()
    assert "failed" in page.get_by_test_id("approve-hint").inner_text().lower()

    deny_form = page.get_by_test_id("deny-form")
    reasons = list(
        DenialReason.objects.filter(criterion__code="error_handling", is_active=True)
    )
    assert reasons
    chosen = reasons[0]
    # Denying without a reason is refused and says what to do.
    page.get_by_test_id("deny").click()
    page.wait_for_load_state()
    assert "Choose at least one denial reason" in page.content()
    case.refresh_from_db()
    assert case.state == ReviewCase.State.IN_REVIEW

    deny_form = page.get_by_test_id("deny-form")
    deny_form.get_by_label(chosen.title).check()
    deny_form.locator(f"textarea[name=detail-{chosen.pk}]").fill(
        "Seen on 12 of 40 development requests."
    )
    screenshot("05-deny-form")
    page.get_by_test_id("deny").click()
    page.wait_for_load_state()

    assert page.get_by_test_id("case-state").inner_text() == "Denied"
    case.refresh_from_db()
    assert case.state == ReviewCase.State.DENIED
    frozen = CaseDenialReason.objects.get(case=case)
    assert frozen.title == chosen.title
    assert frozen.detail == "Seen on 12 of 40 development requests."
    assert CheckResult.objects.get(
        case=case, criterion__code="error_handling"
    ).note.startswith("App crashes")
    body = page.locator("#denial-reasons").inner_text()
    assert chosen.title in body and "Seen on 12 of 40" in body
    emails = page.get_by_test_id("emails").inner_text()
    assert "Denial" in emails and "ops@pantrypal.example" in emails
    screenshot("06-case-denied")


def _in_view(page, locator) -> bool:
    box = locator.bounding_box()
    viewport = page.viewport_size
    return (
        box is not None
        and box["y"] >= 0
        and box["y"] + box["height"] <= viewport["height"]
        and box["x"] + box["width"] <= viewport["width"]
    )


def test_decision_in_reach_without_scrolling_at_1280x720(live_server, browser):
    """On a laptop screen the holder's Save / Approve / Deny and the reasons to
    choose are in view on arrival, and the action bar stays while scrolling."""
    make_user("Reviewer", "rita@staff.example", "Rita Reviewer")
    # An affiliate case: the longest checklist (six criteria).
    case = make_case(
        account=make_account(name="Basket Buddy", affiliate=True), affiliate=True
    )
    assert case.checks.count() == 6
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        login(page, live_server, "rita@staff.example")
        page.get_by_test_id("nav-claim-next").click()
        page.wait_for_url(re.compile(rf"/reviews/reviewcase/{case.pk}/change/$"))
        for name in ("bar-save-checks", "bar-approve", "bar-deny", "approve"):
            assert _in_view(page, page.get_by_test_id(name)), name
        page.screenshot(path=str(SCREENSHOTS / "07-case-1280x720.png"))

        failing = page.locator(
            '#checklist-form li.rd-check[data-criterion="error_handling"]'
        )
        failing.locator("label.rd-seg", has_text="Fail").click()
        page.get_by_test_id("bar-save-checks").click()
        page.wait_for_load_state()
        assert "Checklist saved: 1 change." in page.locator(".messagelist").inner_text()
        # The reasons to deny are in view beside the checklist.
        reason = DenialReason.objects.filter(
            criterion__code="error_handling", is_active=True
        ).first()
        tick = page.get_by_test_id("deny-form").get_by_label(reason.title)
        assert _in_view(page, tick)
        page.screenshot(path=str(SCREENSHOTS / "08-case-failed-1280x720.png"))
        tick.check()

        # Scrolled to the bottom, the bar is still there and denies with the
        # reasons ticked in the Decision panel.
        page.get_by_role("heading", name="History").scroll_into_view_if_needed()
        assert not _in_view(page, page.get_by_test_id("case-state"))
        assert _in_view(page, page.get_by_test_id("bar-deny"))
        page.screenshot(path=str(SCREENSHOTS / "09-case-scrolled-1280x720.png"))
        page.get_by_test_id("bar-deny").click()
        page.wait_for_load_state()
        assert page.get_by_test_id("case-state").inner_text() == "Denied"
        frozen = CaseDenialReason.objects.get(case=case)
        assert frozen.title == reason.title
    finally:
        context.close()
