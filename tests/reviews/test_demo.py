"""manage.py demo_setup: realistic data through the real paths, idempotent."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from accounts.models import DeveloperAccount, DeveloperAccountEmail, User
from reviews.management.commands.demo_setup import LOGINS, SAMPLES
from reviews.models import (
    ApiKey,
    CaseDenialReason,
    CaseEvent,
    CheckResult,
    Notification,
    PlatformEventReceipt,
    ReviewCase,
)

pytestmark = pytest.mark.django_db


def demo_setup() -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("demo_setup", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def table_counts() -> dict[str, int]:
    models = [
        User,
        DeveloperAccount,
        DeveloperAccountEmail,
        ApiKey,
        ReviewCase,
        CheckResult,
        CaseDenialReason,
        CaseEvent,
        Notification,
        PlatformEventReceipt,
    ]
    counts = {model.__name__: model.objects.count() for model in models}
    counts["memberships"] = User.groups.through.objects.count()
    return counts


def states() -> dict[str, int]:
    found: dict[str, int] = {}
    for state in ReviewCase.objects.values_list("state", flat=True):
        found[state] = found.get(state, 0) + 1
    return found


class TestDemoSetup:
    def test_running_twice_adds_nothing(self):
        first_out, first_err = demo_setup()
        after_first = table_counts()
        cases_first = list(
            ReviewCase.objects.order_by("pk").values_list("pk", "state", "attempt")
        )

        second_out, second_err = demo_setup()

        assert table_counts() == after_first
        assert (
            list(
                ReviewCase.objects.order_by("pk").values_list("pk", "state", "attempt")
            )
            == cases_first
        )
        assert first_err == second_err == ""
        assert "nothing new" in second_out

    def test_prints_the_url_and_one_login_per_role(self):
        out, _ = demo_setup()
        assert "http://127.0.0.1:8000/" in out
        for email, role, _, password in LOGINS:
            line = next(line for line in out.splitlines() if email in line)
            assert role in line and password in line
            user = User.objects.get(email=email)
            assert user.check_password(password)
            assert list(user.groups.values_list("name", flat=True)) == [role]
            assert user.is_staff and user.is_active
        demo_users = Group.objects.filter(user__email__endswith="@reviewdesk.example")
        roles = set(demo_users.values_list("name", flat=True))
        assert roles == {"Reviewer", "Senior reviewer", "Support", "Admin"}

    def test_existing_logins_are_left_as_they_are(self):
        User.objects.create_user(
            email="reviewer@reviewdesk.example", password="my-own", is_staff=True
        )
        out, err = demo_setup()
        user = User.objects.get(email="reviewer@reviewdesk.example")
        assert user.check_password("my-own")
        assert not user.groups.exists()
        assert "password unchanged" in out
        # That user has no reviewer role, so their demo step is skipped, not forced.
        assert "skipped" in err
        assert not ReviewCase.objects.filter(assignee=user).exists()

    def test_cases_in_every_state_decided_through_the_services(self):
        demo_setup()
        found = states()
        assert found["queued"] >= 20
        assert found["approved"] >= 5
        assert found["denied"] >= 5
        assert found["escalated"] == 1
        assert found["in_review"] == 1
        assert found["withdrawn"] >= 1
        in_review = ReviewCase.objects.get(state="in_review")
        assert in_review.assignee.email == "reviewer@reviewdesk.example"
        escalated = ReviewCase.objects.get(state="escalated")
        assert escalated.escalation_note

        for case in ReviewCase.objects.filter(state__in=["approved", "denied"]):
            assert case.events.filter(code=f"reviews.case.{case.state}").exists()
            assert case.decided_by is not None
            # The decision wrote its email to the outbox.
            kind = "approval" if case.state == "approved" else "denial"
            assert case.notifications.filter(kind=kind).count() == 1
        for case in ReviewCase.objects.filter(state="denied"):
            assert case.denial_reasons.exists()
        assert not Notification.objects.filter(case__state="withdrawn").exists()
        assert ApiKey.objects.filter(status="revoked").exists()

    def test_resubmissions_are_linked_to_what_was_denied(self):
        demo_setup()
        third = ReviewCase.objects.get(key__platform_key_id="pk_demo_09_a", attempt=3)
        assert third.state == "queued"
        second = third.previous_case
        assert (second.attempt, second.state) == (2, "denied")
        assert (second.previous_case.attempt, second.previous_case.state) == (
            1,
            "denied",
        )
        approved_again = ReviewCase.objects.get(
            key__platform_key_id="pk_demo_08_a", attempt=2
        )
        assert approved_again.state == "approved"
        new_key = ReviewCase.objects.get(key__platform_key_id="pk_demo_10_b")
        assert new_key.previous_case.key.platform_key_id == "pk_demo_10_a"
        assert new_key.previous_case.state == "denied"

    def test_partners_are_varied(self):
        demo_setup()
        partners = DeveloperAccount.objects.filter(
            platform_account_id__startswith="acct_demo_"
        )
        assert partners.count() >= 30
        assert partners.filter(wants_affiliate=True).count() >= 10
        assert partners.filter(wants_affiliate=False).count() >= 10
        names = list(partners.values_list("name", flat=True))
        assert any(not name.isascii() for name in names)
        assert any("<script>" in name for name in names)
        # The contact change left the old address findable.
        family = partners.get(platform_account_id="acct_demo_15")
        assert family.contact_email == "platform-team@familytable.example"
        assert family.emails.count() == 2

    def test_includes_the_shared_samples(self):
        assert SAMPLES.is_file()
        demo_setup()
        assert ReviewCase.objects.filter(key__platform_key_id="pk_1001_a").exists()
        assert ApiKey.objects.get(platform_key_id="pk_1002_a").status == "withdrawn"
        # Bad samples were answered and remembered, and stored nothing.
        assert PlatformEventReceipt.objects.filter(response_status=400).count() == 4
        assert not DeveloperAccount.objects.filter(
            platform_account_id__in=["acct_1005", "acct_1006"]
        ).exists()
