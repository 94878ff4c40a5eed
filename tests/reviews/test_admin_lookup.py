"""Support lookup page, notifications admin (resend) and read-only keys, per role."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import DeveloperAccountEmail, User
from reviews import audit, services
from reviews.models import (
    ApiKey,
    CaseEvent,
    DenialReason,
    Notification,
    ReviewCase,
)
from tests.factories import approve_case, make_account, make_case, make_user

LOOKUP = "/reviews/lookup/"


def resend_url(notification_id: int) -> str:
    return f"/reviews/notification/{notification_id}/resend/"


# --- helpers ------------------------------------------------------------------------


def partner(*, former: tuple[str, ...] = (), **fields):
    """A partner with its addresses recorded as the platform ingest records them."""
    account = make_account(**fields)
    for email in (*former, account.contact_email):
        DeveloperAccountEmail.objects.create(account=account, email=email.lower())
    return account


def deny_with(case, reviewer, reasons: list[tuple[DenialReason, str]]):
    """Claim, fail the reasons' criteria (pass the rest) and deny through services."""
    services.review_case_claim(actor=reviewer, case_id=case.pk)
    failed = {reason.criterion_id for reason, _ in reasons}
    services.review_case_record_checks(
        actor=reviewer,
        case_id=case.pk,
        changes=[
            services.CheckChange(
                check.criterion_id, "fail" if check.criterion_id in failed else "pass"
            )
            for check in case.checks.all()
        ],
    )
    return services.review_case_deny(
        actor=reviewer,
        case_id=case.pk,
        reasons=[
            services.DenialChoice(reason.pk, detail) for reason, detail in reasons
        ],
    )


def two_reasons() -> list[DenialReason]:
    first = DenialReason.objects.filter(
        is_active=True, criterion__code="error_handling"
    ).first()
    second = DenialReason.objects.filter(
        is_active=True, criterion__code="help_desk_account"
    ).first()
    return [first, second]


def snapshot():
    """Everything a forged request could change."""
    return (
        list(
            Notification.objects.order_by("pk").values_list(
                "pk", "status", "attempts", "to_email", "updated_at", "times_sent"
            )
        ),
        CaseEvent.objects.count(),
        LogEntry.objects.count(),
        list(ReviewCase.objects.order_by("pk").values_list("pk", "state")),
        list(ApiKey.objects.order_by("pk").values_list("pk", "status")),
    )


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser(email="root@staff.example", password="pw")


@pytest.fixture
def denied(reviewer, django_capture_on_commit_callbacks):
    """A denied, resubmitted-then-denied-again partner; the first email was sent."""
    account = partner(
        contact_email="new@pantry.example",
        former=("Old.Address@Pantry.example",),
        name="Pantry Planner Inc.",
        platform_account_id="acct_1001",
    )
    first, second = two_reasons()
    with django_capture_on_commit_callbacks(execute=True):
        case1 = deny_with(
            make_case(account=account), reviewer, [(first, "No retry on 429 <b>x</b>")]
        )
    case2 = make_case(account=account, previous_case=case1, attempt=2)
    case2 = deny_with(case2, reviewer, [(first, "Still no backoff"), (second, "")])
    return account, case1, case2


# --- the lookup page ------------------------------------------------------------------


class TestLookupAnswers:
    @pytest.mark.parametrize(
        "query",
        [
            "new@pantry.example",
            "NEW@Pantry.Example",
            "  old.address@pantry.example ",
            "acct_1001",
            "pantry plan",
        ],
    )
    def test_finds_partner_with_cases_newest_first(
        self, client, support, denied, query
    ):
        account, case1, case2 = denied
        client.force_login(support)
        response = client.get(LOOKUP, {"q": query})
        assert response.status_code == 200
        lookup = response.context["lookup"]
        assert [p.account.pk for p in lookup.partners] == [account.pk]
        assert [c.pk for c in lookup.partners[0].cases] == [case2.pk, case1.pk]
        html = response.content.decode()
        assert html.index(case2.reference) < html.index(case1.reference)

    def test_by_key_id_and_case_reference(self, client, support, denied):
        account, case1, case2 = denied
        client.force_login(support)
        response = client.get(LOOKUP, {"q": case1.key.platform_key_id})
        assert response.context["lookup"].partners[0].matched_by == "key id"
        response = client.get(LOOKUP, {"q": f"rc-{case1.pk}"})
        lookup = response.context["lookup"]
        assert lookup.matched_case_id == case1.pk
        assert [c.pk for c in lookup.partners[0].cases] == [case2.pk, case1.pk]
        assert f'id="case-{case1.pk}"' in response.content.decode()

    def test_former_address_says_so(self, client, support, denied):
        client.force_login(support)
        response = client.get(LOOKUP, {"q": "old.address@pantry.example"})
        html = response.content.decode()
        assert "Found by former contact email" in html
        assert "old.address@pantry.example" in html

    def test_shows_reasons_detail_decision_and_email(
        self, client, support, reviewer, denied
    ):
        account, case1, case2 = denied
        first, second = two_reasons()
        client.force_login(support)
        html = client.get(LOOKUP, {"q": "acct_1001"}).content.decode()
        for reason in (first, second):
            assert reason.title in html
            assert reason.support_text.split("\n")[0][:60] in html
        assert "Still no backoff" in html
        assert "No retry on 429 &lt;b&gt;x&lt;/b&gt;" in html
        assert "Denied</strong> by Rita Reviewer" in html
        # The first email went out; the second is still waiting in the outbox.
        sent = case1.notifications.get()
        assert sent.status == Notification.Status.SENT
        assert "Sent (no delivery report yet)" in html
        assert "Waiting to be sent" in html
        assert html.count("Resend decision email") == 2
        assert reverse("admin:reviews_notification_resend", args=[sent.pk]) in html

    def test_failed_and_bounced_emails_are_explained(self, client, support, denied):
        account, case1, case2 = denied
        Notification.objects.filter(case=case1).update(delivery_status="bounced")
        Notification.objects.filter(case=case2).update(
            status=Notification.Status.FAILED,
            attempts=5,
            last_error="AnymailRecipientsRefused: mailbox unavailable",
        )
        client.force_login(support)
        html = client.get(LOOKUP, {"q": "acct_1001"}).content.decode()
        assert "Sent, then bounced" in html
        assert "Sending failed" in html
        assert "5 attempts" in html
        assert "AnymailRecipientsRefused: mailbox unavailable" in html

    def test_unknown_and_empty(self, client, support, denied):
        client.force_login(support)
        response = client.get(LOOKUP, {"q": "nobody@nowhere.example"})
        assert response.status_code == 200
        assert "No partner or case matches" in response.content.decode()
        response = client.get(LOOKUP, {"q": "RC-999999"})
        assert "There is no case RC-999999." in response.content.decode()
        response = client.get(LOOKUP)
        assert response.status_code == 200
        assert response.context["lookup"].partners == []

    def test_open_and_approved_cases(self, client, support, reviewer):
        account = partner()
        queued = make_case(account=account)
        approved = approve_case(make_case(account=account), reviewer)
        client.force_login(support)
        html = client.get(LOOKUP, {"q": account.contact_email}).content.decode()
        assert "waiting in the queue" in html
        assert f"{approved.reference}" in html and "Approved</strong> by" in html
        assert queued.reference in html

    def test_partner_text_is_escaped(self, client, support, reviewer):
        account = partner(
            name="<b>Bold</b> Foods <script>alert('x')</script>",
            contact_name='"Quote" O\'Brien',
        )
        first, _ = two_reasons()
        deny_with(make_case(account=account), reviewer, [(first, "<img src=x>")])
        client.force_login(support)
        html = client.get(LOOKUP, {"q": account.contact_email}).content.decode()
        assert "<script>alert" not in html
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
        assert "<img src=x>" not in html
        assert "&lt;img src=x&gt;" in html
        assert "&lt;b&gt;Bold&lt;/b&gt;" in html

    def test_many_partners_by_name_are_capped(self, client, support):
        for n in range(22):
            make_account(name=f"Cap Test {n:02d}")
        client.force_login(support)
        response = client.get(LOOKUP, {"q": "cap test"})
        lookup = response.context["lookup"]
        assert len(lookup.partners) == 20
        assert lookup.more_partners
        assert "More partners match" in response.content.decode()


def test_old_case_by_reference_beyond_the_page(client, support, monkeypatch):
    from reviews.selectors import lookup as lookup_selectors

    monkeypatch.setattr(lookup_selectors, "LOOKUP_MAX_CASES", 2)
    account = partner()
    oldest, *_ = [make_case(account=account) for _ in range(4)]
    client.force_login(support)
    page = client.get(LOOKUP, {"q": account.contact_email})
    assert len(page.context["lookup"].partners[0].cases) == 2
    assert "Only the newest" in page.content.decode()
    page = client.get(LOOKUP, {"q": oldest.reference})
    shown = [case.pk for case in page.context["lookup"].partners[0].cases]
    assert len(shown) == 3 and shown[-1] == oldest.pk


class TestLookupQueryCount:
    """The page costs the same whatever the partner's history (issue 4 guard)."""

    def _count(self, client, query: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(LOOKUP, {"q": query})
        assert response.status_code == 200
        return len(queries)

    def _partner_with(self, n: int, reviewer) -> tuple:
        account = partner()
        previous = None
        reasons = two_reasons()
        for attempt in range(1, n + 1):
            case = make_case(account=account, previous_case=previous, attempt=attempt)
            previous = deny_with(
                case, reviewer, [(reasons[0], f"try {attempt}"), (reasons[1], "")]
            )
        return account, previous

    def test_same_count_for_2_and_20_cases(self, client, support, reviewer):
        small, small_last = self._partner_with(2, reviewer)
        big, big_last = self._partner_with(20, reviewer)
        client.force_login(support)
        self._count(client, small.contact_email)  # warm caches (content types)
        by_kind = {}
        for label, account, last in (("2", small, small_last), ("20", big, big_last)):
            counts = {
                "email": self._count(client, account.contact_email),
                "account": self._count(client, account.platform_account_id),
                "key": self._count(client, last.key.platform_key_id),
                "reference": self._count(client, last.reference),
                "name": self._count(client, account.name),
            }
            by_kind[label] = counts
        assert by_kind["2"] == by_kind["20"]
        # Session, user and its permissions (4), then the lookup: which partners
        # (1; a name adds 1 after the ids missed), partners + addresses (2),
        # cases + reasons + emails (3).
        assert by_kind["20"] == {
            "email": 10,
            "account": 10,
            "key": 10,
            "reference": 10,
            "name": 11,
        }
        page = client.get(LOOKUP, {"q": big.contact_email})
        assert len(page.context["lookup"].partners[0].cases) == 20
        assert page.content.decode().count('class="rd-reasons"') == 20


@pytest.mark.postgres
class TestLookupUsesIndexes:
    """EXPLAIN of every lookup query: no sequential scan of a large table."""

    LARGE = (
        "reviews_reviewcase",
        "reviews_apikey",
        "reviews_casedenialreason",
        "reviews_notification",
        "accounts_developeraccount",
        "accounts_developeraccountemail",
    )

    @pytest.mark.parametrize("kind", ["email", "account", "key", "reference"])
    def test_no_seq_scan(self, kind, reviewer, denied):
        from reviews.selectors import support_lookup_get

        account, case1, case2 = denied
        query = {
            "email": "OLD.address@pantry.example",
            "account": account.platform_account_id,
            "key": case2.key.platform_key_id,
            "reference": case2.reference,
        }[kind]
        with CaptureQueriesContext(connection) as queries:
            result = support_lookup_get(query=query)
        assert [c.pk for c in result.partners[0].cases] == [case2.pk, case1.pk]
        with connection.cursor() as cursor:
            cursor.execute("SET enable_seqscan = off")
            try:
                for query in queries.captured_queries:
                    cursor.execute("EXPLAIN " + query["sql"])
                    plan = "\n".join(row[0] for row in cursor.fetchall())
                    for table in self.LARGE:
                        assert f"Seq Scan on {table}" not in plan, (query, plan)
            finally:
                cursor.execute("SET enable_seqscan = on")


# --- permissions on the lookup page ---------------------------------------------------


class TestLookupPermissions:
    def test_support_and_superuser_may(self, client, support, superuser, denied):
        for user in (support, superuser):
            client.force_login(user)
            assert client.get(LOOKUP, {"q": "acct_1001"}).status_code == 200

    @pytest.mark.parametrize("role", ["reviewer", "senior", "admin_user"])
    def test_other_roles_are_refused(self, client, request, role, denied):
        client.force_login(request.getfixturevalue(role))
        response = client.get(LOOKUP, {"q": "acct_1001"})
        assert response.status_code == 403
        assert b"Pantry Planner" not in response.content

    def test_read_only(self, client, support, denied):
        client.force_login(support)
        before = snapshot()
        assert client.post(LOOKUP, {"q": "acct_1001"}).status_code == 405
        assert snapshot() == before

    def test_support_can_open_the_case_page(self, client, support, denied):
        client.force_login(support)
        case = denied[2]
        page = client.get(LOOKUP, {"q": case.reference})
        link = reverse("admin:reviews_reviewcase_change", args=[case.pk])
        assert link in page.content.decode()
        assert client.get(link).status_code == 200

    def test_anonymous_goes_to_login(self, client, denied):
        response = client.get(LOOKUP, {"q": "acct_1001"})
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")

    def test_non_staff_goes_to_login(self, client, denied):
        outsider = make_user("Support", "outsider@staff.example")
        outsider.is_staff = False
        outsider.save()
        client.force_login(outsider)
        response = client.get(LOOKUP, {"q": "acct_1001"})
        assert response.status_code == 302


# --- resend ---------------------------------------------------------------------------


class TestResend:
    def test_support_resends_from_lookup(
        self, client, support, denied, outbox, django_capture_on_commit_callbacks
    ):
        account, case1, case2 = denied
        sent = case1.notifications.get()
        DeveloperAccountEmail.objects.create(
            account=account, email="newer@pantry.example"
        )
        account.contact_email = "newer@pantry.example"
        account.save()
        outbox.clear()
        client.force_login(support)
        back = f"{LOOKUP}?q=acct_1001"
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(resend_url(sent.pk), {"next": back})
        assert response.status_code == 302
        assert response["Location"] == back
        sent.refresh_from_db()
        assert sent.status == Notification.Status.SENT
        assert sent.times_sent == 2
        assert sent.to_email == "newer@pantry.example"
        event = CaseEvent.objects.filter(code=audit.EMAIL_RESEND_REQUESTED).get()
        assert event.actor == support and event.case_id == case1.pk
        assert len(outbox) == 1
        assert "newer@pantry.example" in outbox[0].to[0]
        page = client.get(back)
        messages = [str(m) for m in page.context["messages"]]
        assert any("being sent again" in m for m in messages)

    def test_pending_email_is_refused_with_a_reason(self, client, support, denied):
        account, case1, case2 = denied
        pending = case2.notifications.get()
        before = snapshot()
        client.force_login(support)
        response = client.post(resend_url(pending.pk), follow=True)
        assert response.status_code == 200
        messages = [str(m) for m in response.context["messages"]]
        assert any("still waiting to be sent" in m for m in messages)
        assert snapshot() == before

    def test_asks_first_naming_the_address_it_goes_to(self, client, support, denied):
        account, case1, case2 = denied
        sent = case1.notifications.get()
        old_address = sent.to_email
        account.contact_email = "newer@pantry.example"
        account.save()
        client.force_login(support)
        lookup = client.get(LOOKUP, {"q": "acct_1001"}).content.decode()
        # The lookup links to the question, which comes back to the lookup.
        link = re.search(rf'href="({resend_url(sent.pk)}\?next=[^"]+)"', lookup)
        assert link, lookup
        before = snapshot()
        page = client.get(link.group(1).replace("&amp;", "&"))
        assert page.status_code == 200
        assert snapshot() == before  # asking changes nothing
        html = page.content.decode()
        assert (
            f"Resend the denial email for <strong>{case1.reference}</strong> to "
            '<strong data-testid="resend-to">newer@pantry.example</strong>'
        ) in html
        assert f"It was last sent to {old_address}" in html
        assert "Yes, resend to newer@pantry.example" in html
        assert f'name="next" value="{LOOKUP}?q=acct_1001#case-{case1.pk}"' in html
        assert (
            f'href="{LOOKUP}?q=acct_1001#case-{case1.pk}" data-testid="resend-cancel"'
            in html
        )

    def test_waiting_email_is_not_offered(self, client, support, denied):
        pending = denied[2].notifications.get()
        client.force_login(support)
        html = client.get(resend_url(pending.pk)).content.decode()
        assert "is still waiting to be sent" in html
        assert 'data-testid="resend-confirm-button"' not in html
        lookup = client.get(LOOKUP, {"q": "acct_1001"}).content.decode()
        assert f'href="{resend_url(pending.pk)}' not in lookup

    def test_unsafe_next_is_ignored(self, client, support, denied):
        sent = denied[1].notifications.get()
        client.force_login(support)
        response = client.post(resend_url(sent.pk), {"next": "https://evil.example/"})
        assert response["Location"] == reverse(
            "admin:reviews_notification_change", args=[sent.pk]
        )

    @pytest.mark.parametrize("role", ["reviewer", "senior", "admin_user"])
    def test_forged_resend_is_refused(self, client, request, role, denied, outbox):
        sent = denied[1].notifications.get()
        outbox.clear()
        before = snapshot()
        client.force_login(request.getfixturevalue(role))
        response = client.post(resend_url(sent.pk))
        assert response.status_code == 403
        assert snapshot() == before
        assert outbox == []

    def test_anonymous_resend_is_refused(self, client, denied, outbox):
        sent = denied[1].notifications.get()
        outbox.clear()
        before = snapshot()
        response = client.post(resend_url(sent.pk))
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")
        assert snapshot() == before
        assert outbox == []

    def test_admin_action_resends_through_the_service(
        self, client, support, denied, django_capture_on_commit_callbacks
    ):
        account, case1, case2 = denied
        sent = case1.notifications.get()
        pending = case2.notifications.get()
        client.force_login(support)
        chosen = {
            "action": "resend_selected",
            "_selected_action": [sent.pk, pending.pk],
        }
        # First the action asks, naming every recipient; nothing is sent yet.
        before = snapshot()
        question = client.post("/reviews/notification/", chosen)
        assert question.status_code == 200
        assert snapshot() == before
        html = question.content.decode()
        assert "Resend 1 decision email to the partners" in html
        assert f"<strong>{account.contact_email}</strong>" in html
        assert "not resent: still waiting to be sent" in html
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/reviews/notification/",
                {**chosen, "confirmed": "yes"},
                follow=True,
            )
        messages = [str(m) for m in response.context["messages"]]
        assert any(
            f"Resending 1 email(s): {case1.reference} to {account.contact_email}" in m
            for m in messages
        )
        assert any("still waiting to be sent" in m for m in messages)
        sent.refresh_from_db()
        assert sent.times_sent == 2
        assert CaseEvent.objects.filter(code=audit.EMAIL_RESEND_REQUESTED).count() == 1

    def test_reviewer_cannot_use_the_action(self, client, reviewer, denied, outbox):
        sent = denied[1].notifications.get()
        outbox.clear()
        before = snapshot()
        client.force_login(reviewer)
        changelist = client.get("/reviews/notification/")
        assert changelist.status_code == 200
        assert "resend_selected" not in changelist.content.decode()
        for confirmed in ("", "yes"):
            response = client.post(
                "/reviews/notification/",
                {
                    "action": "resend_selected",
                    "_selected_action": [sent.pk],
                    "confirmed": confirmed,
                },
            )
            assert response.status_code in (200, 302)
            assert "Yes, resend" not in response.content.decode()
        assert snapshot() == before
        assert outbox == []


# --- the notifications list -----------------------------------------------------------


class TestNotificationsAdmin:
    def test_list_and_filters(self, client, support, denied):
        account, case1, case2 = denied
        Notification.objects.filter(case=case2).update(
            status=Notification.Status.FAILED, last_error="SMTP 550 no such user"
        )
        client.force_login(support)
        response = client.get("/reviews/notification/")
        assert response.status_code == 200
        html = response.content.decode()
        assert case1.reference in html and case2.reference in html
        assert "SMTP 550 no such user" in html
        failed = client.get("/reviews/notification/", {"problem": "yes"})
        rows = list(failed.context["cl"].result_list)
        assert [n.case_id for n in rows] == [case2.pk]
        by_status = client.get("/reviews/notification/", {"status__exact": "sent"})
        assert [n.case_id for n in by_status.context["cl"].result_list] == [case1.pk]
        search = client.get("/reviews/notification/", {"q": case1.reference})
        assert [n.case_id for n in search.context["cl"].result_list] == [case1.pk]

    def test_email_body_visible_read_only(self, client, support, denied):
        sent = denied[1].notifications.get()
        client.force_login(support)
        response = client.get(f"/reviews/notification/{sent.pk}/change/")
        assert response.status_code == 200
        html = response.content.decode()
        assert sent.subject and sent.subject in html
        assert denied[1].reference in sent.body_text
        assert 'class="rd-email-body"' in html
        assert "Resend decision email" in html
        assert 'name="_save"' not in html

    def test_forged_change_is_refused(self, client, support, denied):
        sent = denied[1].notifications.get()
        before = snapshot()
        client.force_login(support)
        response = client.post(
            f"/reviews/notification/{sent.pk}/change/",
            {"status": "failed", "to_email": "attacker@evil.example"},
        )
        assert response.status_code == 403
        response = client.post(
            f"/reviews/notification/{sent.pk}/delete/", {"post": "yes"}
        )
        assert response.status_code == 403
        assert snapshot() == before

    def test_admin_role_and_anonymous_cannot_see(self, client, admin_user, denied):
        assert client.get("/reviews/notification/").status_code == 302
        client.force_login(admin_user)
        assert client.get("/reviews/notification/").status_code == 403

    def test_list_query_count_is_flat(self, client, support, reviewer):
        client.force_login(support)
        first, _ = two_reasons()
        deny_with(make_case(), reviewer, [(first, "")])
        with CaptureQueriesContext(connection) as few:
            client.get("/reviews/notification/")
        for _ in range(5):
            deny_with(make_case(), reviewer, [(first, "")])
        with CaptureQueriesContext(connection) as many:
            client.get("/reviews/notification/")
        assert len(few) == len(many)


# --- keys (read-only) ---------------------------------------------------------------


class TestApiKeyAdmin:
    def test_read_only_for_support(self, client, support, denied):
        key = denied[1].key
        client.force_login(support)
        response = client.get(f"/reviews/apikey/{key.pk}/change/")
        assert response.status_code == 200
        assert 'name="_save"' not in response.content.decode()
        search = client.get("/reviews/apikey/", {"q": key.platform_key_id})
        assert [k.pk for k in search.context["cl"].result_list] == [key.pk]

    @pytest.mark.parametrize("role", ["support", "superuser"])
    def test_status_never_editable(self, client, request, role, denied):
        key = denied[1].key
        before = snapshot()
        client.force_login(request.getfixturevalue(role))
        response = client.post(
            f"/reviews/apikey/{key.pk}/change/",
            {"status": "active", "platform_key_id": key.platform_key_id},
        )
        assert response.status_code == 403
        assert client.get("/reviews/apikey/add/").status_code == 403
        assert snapshot() == before
        key.refresh_from_db()
        assert key.status == ApiKey.Status.DENIED

    def test_admin_role_cannot_see_keys(self, client, admin_user, denied):
        client.force_login(admin_user)
        assert client.get("/reviews/apikey/").status_code == 403
