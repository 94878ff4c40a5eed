"""The queue, the case page and its actions, driven as each role would.

Every test asserts the database, the audit trail, the outbox or the number of SQL
queries; every refused action is shown to change nothing.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.html import escape

from accounts.models import DeveloperAccountEmail
from reviews import services
from reviews.models import (
    ApiKey,
    CaseDenialReason,
    CaseEvent,
    CheckResult,
    DenialReason,
    Notification,
    ReviewCase,
)
from tests.factories import make_account, make_case, make_user, pass_all_checks

QUEUE = "/reviews/reviewcase/"
CLAIM_NEXT = "/reviews/reviewcase/claim-next/"
QUEUE_MAX_QUERIES = 6


def case_url(case: ReviewCase | int) -> str:
    pk = case if isinstance(case, int) else case.pk
    return f"/reviews/reviewcase/{pk}/change/"


def action_url(case: ReviewCase | int, action: str) -> str:
    pk = case if isinstance(case, int) else case.pk
    return f"/reviews/reviewcase/{pk}/{action}/"


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def with_address(case: ReviewCase, *emails: str) -> ReviewCase:
    """Record the partner's contact addresses as the ingest does (lower-cased)."""
    for email in (case.account.contact_email, *emails):
        DeveloperAccountEmail.objects.get_or_create(
            account=case.account, email=email.lower()
        )
    return case


def snapshot(case: ReviewCase) -> tuple:
    """Everything an action could change, to prove a refusal changed nothing."""
    case.refresh_from_db()
    key = ApiKey.objects.get(pk=case.key_id)
    return (
        case.state,
        case.assignee_id,
        case.decided_by_id,
        case.escalation_note,
        key.status,
        CaseEvent.objects.filter(case=case).count(),
        Notification.objects.filter(case=case).count(),
        CaseDenialReason.objects.filter(case=case).count(),
        tuple(
            CheckResult.objects.filter(case=case)
            .order_by("criterion_id")
            .values_list("result", "note", "version")
        ),
    )


def listed(response) -> list[int]:
    """Primary keys of the cases on a queue page, in order."""
    return [case.pk for case in response.context["cl"].result_list]


def held_case(reviewer, **fields) -> ReviewCase:
    case = make_case(**fields)
    services.review_case_claim(actor=reviewer, case_id=case.pk)
    case.refresh_from_db()
    return case


def checklist_post(response, **rows) -> dict:
    """The checklist form as the browser would post it, with some rows changed.

    ``rows`` maps a criterion code to a result or a (result, note) pair.
    """
    form = response.context["checklist"]
    data = {}
    for check in form.checks:
        prefix = f"check-{check.criterion_id}"
        result = form.fields[f"{prefix}-result"].initial
        note = form.fields[f"{prefix}-note"].initial
        change = rows.get(check.criterion.code)
        if isinstance(change, tuple):
            result, note = change
        elif change is not None:
            result = change
        if result and result != CheckResult.Result.UNCHECKED:
            data[f"{prefix}-result"] = result
        data[f"{prefix}-note"] = note
        data[f"{prefix}-version"] = form.fields[f"{prefix}-version"].initial
    return data


def refused_then_shown(client, response, case: ReviewCase):
    """A refused action redirects to the case page (post/redirect/get); the page
    after it shows the refusal and the input that was kept. Returns that page."""
    assert response.status_code == 302
    assert response["Location"] == case_url(case)
    page = client.get(case_url(case))
    assert page.status_code == 200
    return page


def fail_check(case: ReviewCase, reviewer, code: str = "error_handling") -> None:
    check = case.checks.select_related("criterion").get(criterion__code=code)
    services.review_case_record_check(
        actor=reviewer, case_id=case.pk, criterion_id=check.criterion_id, result="fail"
    )


# --- the queue -----------------------------------------------------------------------


class TestQueue:
    def test_anonymous_is_sent_to_login(self, db):
        response = Client().get(QUEUE)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")

    def test_user_without_a_role_is_refused(self, db):
        nobody = make_user(None, "nobody@staff.example")
        assert client_for(nobody).get(QUEUE).status_code == 403

    def test_open_cases_oldest_first_with_all_columns(self, reviewer, reviewer2):
        now = timezone.now()
        old = make_case(submitted_at=now - timedelta(days=3))
        newer = make_case(submitted_at=now - timedelta(hours=2), affiliate=True)
        held = held_case(reviewer2, submitted_at=now - timedelta(hours=5))
        decided = held_case(reviewer2, submitted_at=now - timedelta(days=9))
        pass_all_checks(decided, reviewer2)
        services.review_case_approve(actor=reviewer2, case_id=decided.pk)

        response = client_for(reviewer).get(QUEUE)

        assert response.status_code == 200
        assert listed(response) == [old.pk, held.pk, newer.pk]
        html = response.content.decode()
        for case in (old, newer, held):
            assert case.reference in html
            assert case.account.name in html
            assert case.key.platform_key_id in html
        assert "…ab12" in html  # key hint
        assert 'class="badge badge-queued"' in html
        assert 'class="badge badge-in_review"' in html
        assert "Rob Reviewer" in html  # assignee
        assert ">3 d<" in html and ">2 h<" in html and ">5 h<" in html
        assert "Affiliate</span>" in html
        assert decided.reference not in html
        assert 'data-testid="claim-next"' in html

    def test_page_is_one_query_plus_login_whatever_the_number_of_rows(
        self, reviewer, reviewer2
    ):
        client = client_for(reviewer)
        for n in range(5):
            held_case(reviewer2) if n % 2 else make_case(affiliate=True)
        with CaptureQueriesContext(connection) as few:
            assert client.get(QUEUE).status_code == 200
        for n in range(55):
            held_case(reviewer2) if n % 3 == 0 else make_case(affiliate=n % 2 == 0)
        with CaptureQueriesContext(connection) as many:
            response = client.get(QUEUE)
        assert len(listed(response)) == 50
        assert len(many) == len(few) <= QUEUE_MAX_QUERIES
        sql = " ".join(query["sql"].upper() for query in many.captured_queries)
        assert "COUNT(" not in sql

    def test_pages_without_counting(self, reviewer):
        now = timezone.now()
        cases = [
            make_case(submitted_at=now - timedelta(minutes=100 - n)) for n in range(60)
        ]
        client = client_for(reviewer)
        first = client.get(QUEUE)
        assert listed(first) == [case.pk for case in cases[:50]]
        assert first.context["cl"].has_next_page
        assert 'rel="next"' in first.content.decode()
        second = client.get(QUEUE, {"p": 2})
        assert listed(second) == [case.pk for case in cases[50:]]
        assert not second.context["cl"].has_next_page
        assert 'rel="prev"' in second.content.decode()
        assert "Cases 51–60" in second.content.decode()

    def test_state_filters(self, reviewer, senior):
        queued = make_case()
        in_review = held_case(reviewer)
        escalated = held_case(reviewer)
        services.review_case_escalate(actor=reviewer, case_id=escalated.pk, note="?")
        approved = held_case(reviewer)
        pass_all_checks(approved, reviewer)
        services.review_case_approve(actor=reviewer, case_id=approved.pk)
        denied = held_case(reviewer)
        fail_check(denied, reviewer)
        reason = DenialReason.objects.filter(criterion__code="error_handling").first()
        services.review_case_deny(
            actor=reviewer,
            case_id=denied.pk,
            reasons=[services.DenialChoice(reason.pk)],
        )
        withdrawn = make_case()
        services.review_case_withdraw(case_id=withdrawn.pk)
        client = client_for(senior)

        expected = {
            "queued": [queued.pk],
            "in_review": [in_review.pk],
            "escalated": [escalated.pk],
            "approved": [approved.pk],
            "denied": [denied.pk],
            "withdrawn": [withdrawn.pk],
            "open": [queued.pk, in_review.pk, escalated.pk],
        }
        for state, pks in expected.items():
            response = client.get(QUEUE, {"state": state})
            assert sorted(listed(response)) == sorted(pks), state
        default = client.get(QUEUE)
        assert sorted(listed(default)) == sorted(expected["open"])
        assert len(listed(client.get(QUEUE, {"state": "all"}))) == 6

    def test_mine_unassigned_affiliate_and_resubmission_filters(
        self, reviewer, reviewer2
    ):
        mine = held_case(reviewer)
        theirs = held_case(reviewer2, affiliate=True)
        waiting = make_case(affiliate=True)
        first = held_case(reviewer2)
        fail_check(first, reviewer2)
        reason = DenialReason.objects.filter(criterion__code="error_handling").first()
        services.review_case_deny(
            actor=reviewer2,
            case_id=first.pk,
            reasons=[services.DenialChoice(reason.pk)],
        )
        resubmitted = make_case(account=first.account, previous_case=first, attempt=2)
        client = client_for(reviewer)

        assert listed(client.get(QUEUE, {"assigned": "mine"})) == [mine.pk]
        assert sorted(listed(client.get(QUEUE, {"assigned": "unassigned"}))) == sorted(
            [waiting.pk, resubmitted.pk]
        )
        assert sorted(listed(client.get(QUEUE, {"affiliate": "1"}))) == sorted(
            [theirs.pk, waiting.pk]
        )
        assert sorted(listed(client.get(QUEUE, {"affiliate": "0"}))) == sorted(
            [mine.pk, resubmitted.pk]
        )
        # A new key after a denial is a resubmission too (attempt 1, linked).
        new_key = make_case(account=first.account, previous_case=first, attempt=1)
        assert sorted(listed(client.get(QUEUE, {"resubmission": "1"}))) == sorted(
            [resubmitted.pk, new_key.pk]
        )
        first_requests = listed(client.get(QUEUE, {"resubmission": "0"}))
        assert resubmitted.pk not in first_requests
        assert new_key.pk not in first_requests
        combined = client.get(QUEUE, {"state": "all", "resubmission": "0"})
        assert first.pk in listed(combined)
        # An unknown value is ignored rather than an error page.
        assert client.get(QUEUE, {"assigned": "bogus"}).status_code == 200


class TestQueueNotices:
    """Above the list: the cases the user holds; for seniors, escalated cases."""

    def escalated_case(self, reviewer, **fields) -> ReviewCase:
        case = held_case(reviewer, **fields)
        services.review_case_escalate(actor=reviewer, case_id=case.pk, note="?")
        return case

    def test_reviewer_sees_the_cases_they_hold_oldest_first(self, reviewer, reviewer2):
        now = timezone.now()
        newer = held_case(reviewer, submitted_at=now - timedelta(hours=1))
        older = held_case(reviewer, submitted_at=now - timedelta(days=2))
        held_case(reviewer2)
        self.escalated_case(reviewer2)
        response = client_for(reviewer).get(QUEUE)
        html = response.content.decode()
        notice = re.search(r'data-testid="notice-held">(.*?)</p>', html, re.S)
        assert notice
        text = notice.group(1)
        assert text.index(older.reference) < text.index(newer.reference)
        assert f'href="{case_url(older)}"' in text
        assert "see all your cases" not in text
        # Reviewers do not decide escalated cases: no notice for them.
        assert 'data-testid="notice-escalated"' not in html

    def test_at_most_five_held_cases_are_named(self, reviewer):
        cases = [held_case(reviewer) for _ in range(7)]
        html = client_for(reviewer).get(QUEUE).content.decode()
        notice = re.search(r'data-testid="notice-held">(.*?)</p>', html, re.S)
        named = re.findall(r"RC-\d+", notice.group(1))
        assert named == [case.reference for case in cases[:5]]
        assert f'href="{QUEUE}?assigned=mine">see all your cases' in notice.group(1)

    def test_no_held_notice_where_the_list_shows_them_or_when_holding_none(
        self, reviewer
    ):
        client = client_for(reviewer)
        make_case()
        assert 'data-testid="notice-held"' not in client.get(QUEUE).content.decode()
        case = held_case(reviewer)
        for params in ({"assigned": "mine"}, {"q": case.reference}):
            html = client.get(QUEUE, params).content.decode()
            assert 'data-testid="notice-held"' not in html, params

    def test_senior_sees_how_many_escalated_cases_wait(self, senior, reviewer):
        for days in (1, 3):
            self.escalated_case(
                reviewer, submitted_at=timezone.now() - timedelta(days=days)
            )
        held_case(reviewer)
        client = client_for(senior)
        html = client.get(QUEUE).content.decode()
        notice = re.search(r'data-testid="notice-escalated">(.*?)</p>', html, re.S)
        assert notice
        text = " ".join(notice.group(1).split())
        assert f'<a href="{QUEUE}?state=escalated">2 escalated cases wait for a ' in (
            text
        )
        assert "the oldest submitted 3 d ago" in text
        # On the escalated list itself the notice would only repeat it.
        html = client.get(QUEUE, {"state": "escalated"}).content.decode()
        assert 'data-testid="notice-escalated"' not in html

    def test_one_escalated_case_reads_singular(self, senior, reviewer):
        self.escalated_case(reviewer)
        html = client_for(senior).get(QUEUE).content.decode()
        assert "1 escalated case waits for a senior" in html

    def test_senior_who_holds_cases_sees_both_within_the_query_budget(
        self, senior, reviewer
    ):
        mine = held_case(senior)
        for _ in range(3):
            self.escalated_case(reviewer)
        for _ in range(4):
            make_case()
        client = client_for(senior)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(QUEUE)
        html = response.content.decode()
        assert mine.reference in re.search(
            r'data-testid="notice-held">(.*?)</p>', html, re.S
        ).group(1)
        assert "3 escalated cases wait" in html
        # Session, user, two for permissions, the page, and one for both notices.
        assert len(queries) <= QUEUE_MAX_QUERIES
        notice_sql = [
            query["sql"].upper()
            for query in queries.captured_queries
            if "UNION" in query["sql"].upper()
        ]
        assert len(notice_sql) == 1 and "COUNT(" in notice_sql[0]


class TestEmptyQueueMessage:
    """An empty page says why, in the terms of the search and filters in use."""

    def empty_text(self, client, **params) -> str:
        response = client.get(QUEUE, params)
        assert response.status_code == 200
        assert listed(response) == []
        html = response.content.decode()
        match = re.search(r'data-testid="queue-empty">(.*?)</p>', html, re.S)
        assert match, html
        return " ".join(match.group(1).split())

    def test_my_cases_when_holding_none_while_others_wait(self, reviewer):
        for _ in range(3):
            make_case()
        text = self.empty_text(client_for(reviewer), assigned="mine")
        assert "You hold no cases. Claim the next case to start." in text
        assert "queue is empty" not in text
        assert f'href="{QUEUE}"' in text  # to the whole queue

    def test_my_cases_for_support_who_cannot_claim(self, db):
        viewer = make_user("Support", "viewer@staff.example")
        text = self.empty_text(client_for(viewer), assigned="mine")
        assert text.startswith("You hold no cases.")
        assert "Claim" not in text

    def test_empty_queue(self, reviewer):
        text = self.empty_text(client_for(reviewer))
        assert "No open cases: nothing is waiting, the queue is empty." in text

    def test_unassigned_when_every_open_case_is_held(self, reviewer, reviewer2):
        held_case(reviewer2)
        text = self.empty_text(client_for(reviewer), assigned="unassigned")
        assert "every open case is held by a reviewer" in text

    def test_one_state(self, senior):
        make_case()
        client = client_for(senior)
        assert "nothing waits for a senior reviewer" in self.empty_text(
            client, state="escalated"
        )
        assert "No approved cases." in self.empty_text(client, state="approved")

    def test_search_names_the_term_and_the_filters(self, reviewer):
        make_case(account=make_account(name="Acme Groceries"))
        client = client_for(reviewer)
        text = self.empty_text(client, q="Nothing Like This")
        assert "No cases match “Nothing Like This” in any state." in text
        text = self.empty_text(client, q="Acme", affiliate="1", state="queued")
        assert "No cases match “Acme” with these filters" in text
        assert "state: Queued" in text and "affiliate: Affiliate" in text
        # "Clear the filters" keeps the search term.
        assert 'href="?q=Acme"' in text

    def test_combined_filters(self, reviewer):
        make_case()
        text = self.empty_text(client_for(reviewer), affiliate="1", resubmission="1")
        assert "No cases match these filters" in text
        assert "affiliate: Affiliate; request: Resubmissions" in text
        assert "Clear the filters" in text

    def test_page_past_the_end(self, reviewer):
        make_case()
        text = self.empty_text(client_for(reviewer), p=3)
        assert "past the end of the list" in text
        assert "Back to the first page" in text

    def test_partner_text_in_the_search_term_is_escaped(self, reviewer):
        text = self.empty_text(client_for(reviewer), q="<b>x</b>")
        assert "<b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text


class TestQueueSearch:
    @pytest.fixture
    def cases(self, reviewer):
        target = with_address(
            make_case(
                account=make_account(
                    name="Acme Groceries", contact_email="New@Acme.example"
                )
            ),
            "Old.Contact@acme.example",
        )
        decided = held_case(reviewer, account=target.account)
        pass_all_checks(decided, reviewer)
        services.review_case_approve(actor=reviewer, case_id=decided.pk)
        other = with_address(make_case(account=make_account(name="Zed Foods")))
        return target, decided, other

    def search(self, user, term, **params):
        client = client_for(user)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(QUEUE, {"q": term, **params})
        assert response.status_code == 200
        # Session, user and permissions cost 4; a search adds at most a key
        # lookup to the page itself.
        assert len(queries) <= QUEUE_MAX_QUERIES
        return response

    def test_by_case_reference_in_any_spelling(self, reviewer, cases):
        target, _decided, _other = cases
        for term in (target.reference, target.reference.lower(), f"RC{target.pk}"):
            response = self.search(reviewer, term)
            assert listed(response) == [target.pk]
            assert response.context["queue_search"].kind == "reference"

    def test_by_contact_email_current_or_former_any_case(self, reviewer, cases):
        target, decided, _other = cases
        for term in ("new@acme.example", "OLD.CONTACT@acme.example"):
            response = self.search(reviewer, term)
            # A search looks in every state unless one is picked.
            assert listed(response) == sorted(
                [target.pk, decided.pk],
                key=lambda pk: ReviewCase.objects.get(pk=pk).submitted_at,
            )
            assert response.context["queue_search"].kind == "email"
        open_only = self.search(reviewer, "new@acme.example", state="open")
        assert listed(open_only) == [target.pk]
        assert listed(self.search(reviewer, "nobody@acme.example")) == []

    def test_by_key_id(self, reviewer, cases):
        target, _decided, _other = cases
        response = self.search(reviewer, target.key.platform_key_id)
        assert listed(response) == [target.pk]
        assert response.context["queue_search"].kind == "key"

    def test_by_partner_name_or_account_id(self, reviewer, cases):
        target, decided, other = cases
        response = self.search(reviewer, "groceries")
        assert set(listed(response)) == {target.pk, decided.pk}
        assert response.context["queue_search"].kind == "name"
        assert listed(self.search(reviewer, other.account.platform_account_id)) == [
            other.pk
        ]

    def test_short_name_term_says_what_to_do(self, reviewer, cases):
        response = self.search(reviewer, "ac")
        assert listed(response) == []
        assert "at least 3 letters" in response.content.decode()

    def test_search_is_escaped(self, reviewer, cases):
        response = self.search(reviewer, "<script>alert(1)</script>")
        html = response.content.decode()
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --- claim next -----------------------------------------------------------------------


class TestClaimNext:
    def test_reviewer_gets_the_oldest_queued_case(self, reviewer):
        now = timezone.now()
        make_case(submitted_at=now)
        oldest = make_case(submitted_at=now - timedelta(days=2))
        response = client_for(reviewer).post(CLAIM_NEXT)
        assert response.status_code == 302
        assert response["Location"] == case_url(oldest)
        oldest.refresh_from_db()
        assert oldest.state == ReviewCase.State.IN_REVIEW
        assert oldest.assignee == reviewer
        event = CaseEvent.objects.get(case=oldest, code="reviews.case.claimed")
        assert event.actor == reviewer

    def test_empty_queue_says_so(self, reviewer):
        response = client_for(reviewer).post(CLAIM_NEXT)
        assert response["Location"] == QUEUE
        assert any("The queue is empty" in text for text in messages_of(response))

    @pytest.mark.parametrize("role", ["support", "admin_user"])
    def test_refused_to_roles_that_do_not_review(self, db, request, role):
        case = make_case()
        before = snapshot(case)
        response = client_for(request.getfixturevalue(role)).post(CLAIM_NEXT)
        assert response.status_code == 403
        assert snapshot(case) == before

    def test_anonymous_and_get(self, reviewer):
        case = make_case()
        before = snapshot(case)
        assert Client().post(CLAIM_NEXT)["Location"].startswith("/login/")
        assert client_for(reviewer).get(CLAIM_NEXT).status_code == 405
        assert snapshot(case) == before


# --- the case page --------------------------------------------------------------------


class TestCasePage:
    def test_anonymous_is_sent_to_login(self, db):
        case = make_case()
        response = Client().get(case_url(case))
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")

    def test_missing_case_is_404(self, reviewer):
        assert client_for(reviewer).get(case_url(999999)).status_code == 404

    def test_queued_case_offers_claim_to_a_reviewer(self, reviewer):
        case = make_case()
        response = client_for(reviewer).get(case_url(case))
        html = response.content.decode()
        assert response.status_code == 200
        assert 'data-testid="action-claim"' in html
        assert 'data-testid="checklist-form"' not in html
        assert 'data-testid="approve"' not in html
        assert case.account.contact_email in html
        assert case.key.platform_key_id in html
        assert "Partner" in html and "Integration" in html
        assert f"{case.account.name} app" in html  # integration app name

    def test_holder_gets_checklist_and_decision_with_next_step(self, reviewer):
        case = held_case(reviewer, affiliate=True)
        response = client_for(reviewer).get(case_url(case))
        html = response.content.decode()
        assert 'data-testid="checklist-form"' in html
        assert html.count('class="rd-check ') == case.checks.count() == 6
        # Not applicable is offered for affiliate criteria only.
        assert html.count('value="not_applicable"') == 2
        # Approve is disabled until every check passes, with what is missing.
        assert re.search(r'data-testid="approve"\s+disabled', html)
        assert 'data-testid="approve-hint"' in html
        assert "is not checked yet" in html
        assert 'data-testid="deny-hint"' in html
        assert 'data-testid="action-escalate"' in html
        assert 'data-testid="action-release"' in html
        assert "work the checklist" in html

    def test_action_bar_carries_the_holders_decision_buttons(self, reviewer):
        """Save / Approve / Deny in the (sticky) bar submit the forms below."""
        case = held_case(reviewer)
        client = client_for(reviewer)
        html = client.get(case_url(case)).content.decode()
        for form_id in ("checklist-form", "approve-form"):
            assert f'id="{form_id}"' in html
            assert f'form="{form_id}"' in html
        # Nothing failed yet: Approve and Deny wait, saying why.
        assert re.search(r'data-testid="bar-approve" disabled title="[^"]+"', html)
        assert re.search(r'disabled title="Mark at least one criterion Fail', html)
        fail_check(case, reviewer)
        html = client.get(case_url(case)).content.decode()
        assert 'id="deny-form"' in html and 'form="deny-form"' in html
        assert "rd-deny-first" in html  # the reasons come before approval
        # The decision panel sits beside the checklist, before the partner.
        assert html.index('id="decision"') < html.index('id="partner"')

    def test_other_reviewer_sees_read_only_checklist(self, reviewer, reviewer2):
        case = held_case(reviewer2)
        html = client_for(reviewer).get(case_url(case)).content.decode()
        assert 'data-testid="checklist-form"' not in html
        assert 'data-testid="action-' not in html
        assert "Being reviewed by" in html and "Rob Reviewer" in html

    def test_support_reads_everything_and_can_do_nothing(self, support, reviewer):
        case = held_case(reviewer)
        html = client_for(support).get(case_url(case)).content.decode()
        assert 'data-testid="actions"' not in html
        assert "/claim/" not in html and "/approve/" not in html
        assert 'id="history"' in html and 'id="emails"' in html

    def test_admin_sees_the_case_without_history_emails_or_actions(
        self, admin_user, reviewer
    ):
        # Admins hold reviews.view_reviewcase (roles migration) to judge catalogue
        # changes, but not the audit trail or the partner's emails.
        case = held_case(reviewer)
        response = client_for(admin_user).get(case_url(case))
        html = response.content.decode()
        assert response.status_code == 200
        assert 'data-testid="actions"' not in html
        assert 'id="history"' not in html and 'id="emails"' not in html
        assert client_for(admin_user).get(QUEUE).status_code == 200

    def test_senior_sees_take_and_reassign_on_escalated_case(self, senior, reviewer):
        case = held_case(reviewer)
        services.review_case_escalate(
            actor=reviewer, case_id=case.pk, note="Unsure about the affiliate id"
        )
        html = client_for(senior).get(case_url(case)).content.decode()
        assert 'data-testid="action-take"' in html
        assert 'data-testid="action-reassign"' in html
        assert "Unsure about the affiliate id" in html
        reviewer_html = client_for(reviewer).get(case_url(case)).content.decode()
        assert 'data-testid="action-take"' not in reviewer_html

    def test_partner_text_is_escaped_everywhere(self, reviewer):
        script = "<script>alert('x')</script>"
        account = make_account(name=f"Evil {script}", contact_name=script)
        case = make_case(account=account)
        ReviewCase.objects.filter(pk=case.pk).update(
            integration={
                "app_name": script,
                "app_url": "javascript:alert(1)",
                "endpoints": [script],
                script: script,
            }
        )
        client = client_for(reviewer)
        for url in (case_url(case), QUEUE, f"{QUEUE}?q=Evil"):
            html = client.get(url).content.decode()
            assert script not in html, url
            assert "&lt;script&gt;" in html, url
        assert 'href="javascript:' not in client.get(case_url(case)).content.decode()

    def test_previous_cases_show_their_frozen_denial_reasons(self, reviewer):
        first = held_case(reviewer)
        fail_check(first, reviewer)
        reason = DenialReason.objects.filter(criterion__code="error_handling").first()
        services.review_case_deny(
            actor=reviewer,
            case_id=first.pk,
            reasons=[services.DenialChoice(reason.pk, "No backoff on 429")],
        )
        original_title = reason.title
        # Editing and retiring the catalogue does not change the past decision.
        DenialReason.objects.filter(pk=reason.pk).update(
            title="Reworded title", is_active=False
        )
        second = make_case(
            account=first.account, key=first.key, previous_case=first, attempt=2
        )
        html = client_for(reviewer).get(case_url(second)).content.decode()
        assert first.reference in html
        assert original_title in html and "Reworded title" not in html
        assert "No backoff on 429" in html
        assert "Resubmission · attempt 2" in html

    def test_multi_line_texts_keep_their_line_breaks_escaped(self, reviewer, support):
        """Details, notes and escalation notes read as typed, as on the lookup."""
        detail = "Seen on 12 of 40 requests <b>bold</b>\nSecond line"
        shown = "Seen on 12 of 40 requests &lt;b&gt;bold&lt;/b&gt;<br>Second line"
        first = held_case(reviewer)
        check = first.checks.select_related("criterion").get(
            criterion__code="error_handling"
        )
        services.review_case_record_check(
            actor=reviewer,
            case_id=first.pk,
            criterion_id=check.criterion_id,
            result="fail",
            note="No backoff\non 429",
        )
        reason = DenialReason.objects.filter(criterion__code="error_handling").first()
        services.review_case_deny(
            actor=reviewer,
            case_id=first.pk,
            reasons=[services.DenialChoice(reason.pk, detail)],
        )
        second = held_case(
            reviewer,
            account=first.account,
            key=first.key,
            previous_case=first,
            attempt=2,
        )
        services.review_case_escalate(
            actor=reviewer, case_id=second.pk, note="Terms?\nSee clause 4"
        )
        client = client_for(support)
        decided = client.get(case_url(first)).content.decode()
        assert shown in decided  # the case's own denial reasons
        assert "No backoff<br>on 429" in decided  # the read-only checklist note
        resubmission = client.get(case_url(second)).content.decode()
        assert shown in resubmission  # the previous case's reasons
        assert "Terms?<br>See clause 4" in resubmission  # the escalation note
        lookup = client.get("/reviews/lookup/", {"q": first.reference})
        assert "&lt;b&gt;bold&lt;/b&gt;<br>Second line" in lookup.content.decode()
        assert "<b>bold</b>" not in decided + resubmission

    def test_query_count_does_not_grow_with_history(self, reviewer, reviewer2, senior):
        short = held_case(reviewer)
        long = make_case(account=short.account)
        for n in range(14):
            holder = reviewer if n % 2 else reviewer2
            services.review_case_claim(actor=holder, case_id=long.pk)
            services.review_case_release(actor=holder, case_id=long.pk)
        services.review_case_claim(actor=reviewer, case_id=long.pk)
        assert CaseEvent.objects.filter(case=short).count() == 2
        assert CaseEvent.objects.filter(case=long).count() == 30
        client = client_for(senior)
        counts = []
        for case in (short, long):
            with CaptureQueriesContext(connection) as queries:
                assert client.get(case_url(case)).status_code == 200
            counts.append(len(queries))
        assert counts[0] == counts[1] <= 12

    def test_long_history_shows_the_latest_events_with_a_way_to_all(
        self, reviewer, senior
    ):
        case = make_case()
        for _ in range(30):
            services.review_case_claim(actor=reviewer, case_id=case.pk)
            services.review_case_release(actor=reviewer, case_id=case.pk)
        assert CaseEvent.objects.filter(case=case).count() == 61
        client = client_for(senior)
        with CaptureQueriesContext(connection) as latest_queries:
            latest = client.get(case_url(case))
        with CaptureQueriesContext(connection) as all_queries:
            everything = client.get(case_url(case), {"history": "all"})
        assert len(latest.context["page"].history) == 50
        assert 'data-testid="history-all"' in latest.content.decode()
        # The newest event is among the ones shown; the first is not.
        assert latest.context["page"].history[-1].text.startswith("Released")
        assert "Request received" not in latest.content.decode()
        assert len(everything.context["page"].history) == 61
        assert "Request received" in everything.content.decode()
        assert len(latest_queries) == len(all_queries)

    def test_history_reads_as_sentences(self, reviewer, senior):
        from reviews import audit

        case = held_case(reviewer)
        services.review_case_record_check(
            actor=reviewer,
            case_id=case.pk,
            criterion_id=case.checks.get(criterion__code="error_handling").criterion_id,
            result="fail",
            note="No retry on 503",
        )
        audit.log_event(
            "reviews.key.resubmitted",
            case=case,
            actor_kind=CaseEvent.ActorKind.PLATFORM,
            from_state="denied",
            to_state="pending_approval",
            payload={"key": case.key.platform_key_id},
        )
        html = client_for(senior).get(case_url(case)).content.decode()
        assert "Claimed the case" in html
        assert (
            "Checked “Error handling for the implemented endpoints”: "
            "Unchecked → Fail" in html
        )
        assert "No retry on 503" in html
        assert (
            f"Key {case.key.platform_key_id} resubmitted: Denied → Pending approval"
            in html
        )
        assert ">Platform<" in html and ">Rita Reviewer<" in html

    def test_holder_page_query_count(self, reviewer, django_assert_max_num_queries):
        case = held_case(reviewer)
        fail_check(case, reviewer)
        client = client_for(reviewer)
        with django_assert_max_num_queries(12):
            client.get(case_url(case))

    def test_stock_change_form_never_saves(self, reviewer, senior):
        case = held_case(reviewer)
        before = snapshot(case)
        response = client_for(senior).post(
            case_url(case), {"state": "approved", "assignee": senior.pk}
        )
        assert response.status_code == 405
        assert snapshot(case) == before

    def test_no_add_or_delete(self, senior):
        case = make_case()
        before = snapshot(case)
        client = client_for(senior)
        assert client.get(f"{QUEUE}add/").status_code == 403
        assert client.post(f"{QUEUE}add/", {}).status_code == 403
        assert client.post(f"/reviews/reviewcase/{case.pk}/delete/").status_code in (
            403,
            404,
        )
        assert snapshot(case) == before
        assert ReviewCase.objects.filter(pk=case.pk).exists()

    def test_emails_shown_after_a_decision(
        self, reviewer, outbox, django_capture_on_commit_callbacks
    ):
        case = held_case(reviewer)
        pass_all_checks(case, reviewer)
        client = client_for(reviewer)
        with django_capture_on_commit_callbacks(execute=True):
            client.post(action_url(case, "approve"))
        notification = Notification.objects.get(case=case)
        html = client.get(case_url(case)).content.decode()
        assert 'data-testid="emails"' in html
        assert "Approval" in html and case.account.contact_email in html
        assert notification.get_status_display() in html
        if notification.subject:
            assert notification.subject in html
        if notification.status == Notification.Status.SENT:
            assert len(outbox) == 1
            assert case.account.contact_email in outbox[0].to[0]


# --- actions --------------------------------------------------------------------------


class TestClaimReleaseEscalateTakeReassign:
    def test_claim(self, reviewer):
        case = make_case()
        response = client_for(reviewer).post(action_url(case, "claim"))
        assert response["Location"] == case_url(case)
        case.refresh_from_db()
        assert (case.state, case.assignee) == (ReviewCase.State.IN_REVIEW, reviewer)
        assert CaseEvent.objects.filter(case=case, code="reviews.case.claimed").exists()

    def test_claim_of_a_taken_case_is_refused_with_its_reason(
        self, reviewer, reviewer2
    ):
        case = held_case(reviewer2)
        before = snapshot(case)
        response = client_for(reviewer).post(action_url(case, "claim"))
        assert response["Location"] == case_url(case)
        assert any("already being reviewed" in text for text in messages_of(response))
        assert snapshot(case) == before

    def test_release_by_holder(self, reviewer):
        case = held_case(reviewer)
        client_for(reviewer).post(action_url(case, "release"))
        case.refresh_from_db()
        assert (case.state, case.assignee) == (ReviewCase.State.QUEUED, None)
        assert CaseEvent.objects.filter(
            case=case, code="reviews.case.released"
        ).exists()

    def test_release_by_another_reviewer_is_refused(self, reviewer, reviewer2):
        case = held_case(reviewer2)
        before = snapshot(case)
        response = client_for(reviewer).post(action_url(case, "release"))
        assert any("You do not hold" in text for text in messages_of(response))
        assert snapshot(case) == before

    def test_senior_releases_anyones_claim(self, senior, reviewer):
        case = held_case(reviewer)
        client_for(senior).post(action_url(case, "release"))
        case.refresh_from_db()
        assert case.state == ReviewCase.State.QUEUED
        event = CaseEvent.objects.get(case=case, code="reviews.case.released")
        assert event.actor == senior
        assert event.payload["former_assignee"] == reviewer.pk

    def test_escalate_needs_a_note(self, reviewer):
        case = held_case(reviewer)
        before = snapshot(case)
        client = client_for(reviewer)
        response = client.post(action_url(case, "escalate"), {"note": "  "})
        page = refused_then_shown(client, response, case)
        html = page.content.decode()
        assert "why a senior reviewer should decide" in html
        assert '<details class="rd-popover" open>' in html  # the form is open again
        assert snapshot(case) == before
        # A reload shows the plain page: the refused form is not sent again.
        reload = client.get(case_url(case)).content.decode()
        assert '<details class="rd-popover" open>' not in reload
        assert snapshot(case) == before

    def test_escalate_with_note(self, reviewer):
        case = held_case(reviewer)
        client_for(reviewer).post(
            action_url(case, "escalate"), {"note": "Terms question"}
        )
        case.refresh_from_db()
        assert case.state == ReviewCase.State.ESCALATED
        assert case.escalation_note == "Terms question"
        event = CaseEvent.objects.get(case=case, code="reviews.case.escalated")
        assert event.payload["note"] == "Terms question"

    def test_senior_takes_escalated(self, senior, reviewer):
        case = held_case(reviewer)
        services.review_case_escalate(actor=reviewer, case_id=case.pk, note="help")
        client_for(senior).post(action_url(case, "take"))
        case.refresh_from_db()
        assert (case.state, case.assignee) == (ReviewCase.State.IN_REVIEW, senior)
        assert CaseEvent.objects.filter(case=case, code="reviews.case.taken").exists()

    def test_escalate_is_offered_to_reviewers_not_to_seniors(self, senior, reviewer):
        mine = held_case(reviewer)
        html = client_for(reviewer).get(case_url(mine)).content.decode()
        assert 'data-testid="action-escalate-open"' in html
        taken = held_case(reviewer)
        services.review_case_escalate(actor=reviewer, case_id=taken.pk, note="help")
        client_for(senior).post(action_url(taken, "take"))
        page = client_for(senior).get(case_url(taken))
        assert page.context["actions"]["decide"]
        html = page.content.decode()
        assert 'data-testid="action-escalate-open"' not in html
        assert 'data-testid="action-release"' in html

    def test_senior_reassigns(self, senior, reviewer, reviewer2):
        case = held_case(reviewer)
        response = client_for(senior).post(
            action_url(case, "reassign"), {"assignee": reviewer2.pk}
        )
        assert response["Location"] == case_url(case)
        case.refresh_from_db()
        assert case.assignee == reviewer2
        event = CaseEvent.objects.get(case=case, code="reviews.case.reassigned")
        assert event.payload == {
            "former_assignee": reviewer.pk,
            "assignee": reviewer2.pk,
        }
        html = client_for(senior).get(case_url(case)).content.decode()
        assert "Reassigned from Rita Reviewer to Rob Reviewer" in html

    def test_reassign_to_a_non_reviewer_is_refused(self, senior, reviewer, support):
        case = held_case(reviewer)
        before = snapshot(case)
        client = client_for(senior)
        response = client.post(action_url(case, "reassign"), {"assignee": support.pk})
        assert any("valid choice" in text for text in messages_of(response))
        refused_then_shown(client, response, case)
        assert snapshot(case) == before

    def test_get_on_an_action_is_not_allowed(self, reviewer):
        case = make_case()
        before = snapshot(case)
        assert client_for(reviewer).get(action_url(case, "claim")).status_code == 405
        assert client_for(reviewer).get(action_url(case, "nope")).status_code == 404
        assert snapshot(case) == before


class TestChecklist:
    def test_holder_saves_all_rows_at_once(self, reviewer):
        case = held_case(reviewer)
        client = client_for(reviewer)
        page = client.get(case_url(case))
        data = checklist_post(
            page,
            terms_compliance="pass",
            api_spec_format=("fail", "Bodies miss the recipe title"),
        )
        response = client.post(action_url(case, "checks"), data)
        assert response["Location"] == case_url(case)
        results = dict(
            case.checks.values_list("criterion__code", "result").order_by("id")
        )
        assert results["terms_compliance"] == "pass"
        assert results["api_spec_format"] == "fail"
        assert results["error_handling"] == "unchecked"
        assert case.checks.get(criterion__code="api_spec_format").note == (
            "Bodies miss the recipe title"
        )
        assert (
            CaseEvent.objects.filter(
                case=case, code="reviews.case.check_recorded"
            ).count()
            == 2
        )

    def test_core_criterion_cannot_be_not_applicable(self, reviewer):
        case = held_case(reviewer)
        client = client_for(reviewer)
        data = checklist_post(client.get(case_url(case)))
        terms = case.checks.get(criterion__code="terms_compliance")
        data[f"check-{terms.criterion_id}-result"] = "not_applicable"
        data[f"check-{terms.criterion_id}-note"] = "kept after the refusal"
        before = snapshot(case)
        response = client.post(action_url(case, "checks"), data)
        page = refused_then_shown(client, response, case)
        assert snapshot(case) == before
        html = page.content.decode()
        assert "The checklist was not saved" in html
        assert "kept after the refusal" in html  # the reviewer's input is back
        assert page.context["checklist"].is_bound

    def test_stale_edit_from_two_clients_is_refused_and_shows_current(self, reviewer):
        case = held_case(reviewer)
        first, second = client_for(reviewer), client_for(reviewer)
        first_page = first.get(case_url(case))
        second_page = second.get(case_url(case))

        saved = first.post(
            action_url(case, "checks"),
            checklist_post(first_page, error_handling=("pass", "Handles 429")),
        )
        assert saved.status_code == 302
        before = snapshot(case)

        posted = second.post(
            action_url(case, "checks"),
            checklist_post(
                second_page,
                error_handling=("fail", "No retry"),
                terms_compliance="pass",
            ),
        )
        stale = refused_then_shown(second, posted, case)
        assert snapshot(case) == before  # nothing saved, not even the other row
        check = case.checks.get(criterion__code="error_handling")
        assert (check.result, check.note, check.version) == ("pass", "Handles 429", 1)
        html = stale.content.decode()
        # Both tabs are the same reviewer's: the message says so, not their name.
        title = check.criterion.title
        assert (
            escape(
                f"You changed “{title}” to pass in another tab or window while you "
                "were editing here. Nothing was saved"
            )
            in html
        )
        assert "Rita Reviewer changed" not in html
        assert "you had entered: <strong>Fail</strong>" in html
        # The form now carries the saved values and the new version.
        form = stale.context["checklist"]
        prefix = f"check-{check.criterion_id}"
        assert form.fields[f"{prefix}-result"].initial == "pass"
        assert form.fields[f"{prefix}-version"].initial == 1

    def test_stale_edit_by_someone_else_names_them(self, reviewer, senior):
        case = held_case(reviewer)
        client = client_for(reviewer)
        page = client.get(case_url(case))
        # A senior takes the case over, records a result, and gives it back.
        services.review_case_reassign(actor=senior, case_id=case.pk, assignee=senior)
        check = case.checks.select_related("criterion").get(
            criterion__code="error_handling"
        )
        services.review_case_record_check(
            actor=senior,
            case_id=case.pk,
            criterion_id=check.criterion_id,
            result="pass",
        )
        services.review_case_reassign(actor=senior, case_id=case.pk, assignee=reviewer)
        before = snapshot(case)
        response = client.post(
            action_url(case, "checks"), checklist_post(page, error_handling="fail")
        )
        html = refused_then_shown(client, response, case).content.decode()
        assert escape(f"{senior} changed “{check.criterion.title}” to pass") in html
        assert "another tab or window" not in html
        assert snapshot(case) == before

    def test_former_holder_cannot_overwrite_after_reassignment(
        self, reviewer, reviewer2, senior
    ):
        case = held_case(reviewer)
        stale_client = client_for(reviewer)
        page = stale_client.get(case_url(case))
        services.review_case_reassign(actor=senior, case_id=case.pk, assignee=reviewer2)
        before = snapshot(case)
        response = stale_client.post(
            action_url(case, "checks"), checklist_post(page, terms_compliance="fail")
        )
        shown = refused_then_shown(stale_client, response, case)
        assert "You do not hold" in shown.content.decode()
        assert snapshot(case) == before


class TestDecisions:
    def test_approve(self, reviewer, outbox, django_capture_on_commit_callbacks):
        case = held_case(reviewer)
        pass_all_checks(case, reviewer)
        with django_capture_on_commit_callbacks(execute=True):
            response = client_for(reviewer).post(action_url(case, "approve"))
        assert response["Location"] == case_url(case)
        case.refresh_from_db()
        assert case.state == ReviewCase.State.APPROVED
        assert case.decided_by == reviewer
        assert case.key.status == ApiKey.Status.ACTIVE
        notification = Notification.objects.get(case=case)
        assert notification.kind == Notification.Kind.APPROVAL
        assert notification.to_email == case.account.contact_email
        codes = set(CaseEvent.objects.filter(case=case).values_list("code", flat=True))
        assert {"reviews.case.approved", "reviews.email.queued"} <= codes
        if notification.status == Notification.Status.SENT:
            assert len(outbox) == 1
        # After the decision the page offers the next case.
        html = client_for(reviewer).get(case_url(case)).content.decode()
        assert 'data-testid="claim-next"' in html
        assert 'data-testid="approve"' not in html

    def test_approve_with_open_checks_is_refused(self, reviewer, outbox):
        case = held_case(reviewer)
        fail_check(case, reviewer)
        before = snapshot(case)
        response = client_for(reviewer).post(action_url(case, "approve"))
        assert any("cannot be approved" in text for text in messages_of(response))
        assert snapshot(case) == before
        assert outbox == []

    def test_deny_with_reasons_and_details(
        self, reviewer, outbox, django_capture_on_commit_callbacks
    ):
        case = held_case(reviewer)
        fail_check(case, reviewer, "error_handling")
        client = client_for(reviewer)
        page = client.get(case_url(case))
        html = page.content.decode()
        assert 'data-testid="deny-form"' in html
        reasons = list(
            DenialReason.objects.filter(
                criterion__code="error_handling", is_active=True
            )
        )
        assert reasons and all(reason.title in html for reason in reasons)
        chosen = reasons[0]
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                action_url(case, "deny"),
                {"reasons": [chosen.pk], f"detail-{chosen.pk}": "Crashes on 503"},
            )
        assert response["Location"] == case_url(case)
        case.refresh_from_db()
        assert case.state == ReviewCase.State.DENIED
        assert case.key.status == ApiKey.Status.DENIED
        frozen = CaseDenialReason.objects.get(case=case)
        assert (frozen.title, frozen.support_text, frozen.detail) == (
            chosen.title,
            chosen.support_text,
            "Crashes on 503",
        )
        notification = Notification.objects.get(case=case)
        assert notification.kind == Notification.Kind.DENIAL
        assert CaseEvent.objects.filter(case=case, code="reviews.case.denied").exists()
        page = client.get(case_url(case)).content.decode()
        assert "Crashes on 503" in page and chosen.title in page

    def test_deny_needs_a_reason(self, reviewer):
        case = held_case(reviewer)
        fail_check(case, reviewer)
        before = snapshot(case)
        client = client_for(reviewer)
        response = client.post(action_url(case, "deny"), {})
        page = refused_then_shown(client, response, case)
        assert "Choose at least one denial reason" in page.content.decode()
        assert snapshot(case) == before

    def test_deny_with_a_reason_of_a_criterion_that_did_not_fail(self, reviewer):
        """E.g. the checklist changed in another tab: the message names the reason
        and its criterion, not "no longer available"."""
        case = held_case(reviewer)
        fail_check(case, reviewer, "error_handling")
        other = DenialReason.objects.filter(
            criterion__code="terms_compliance", is_active=True
        ).first()
        errors = DenialReason.objects.filter(
            criterion__code="error_handling", is_active=True
        ).first()
        before = snapshot(case)
        client = client_for(reviewer)
        response = client.post(
            action_url(case, "deny"),
            {"reasons": [other.pk, errors.pk], f"detail-{errors.pk}": "typed 503"},
        )
        page = refused_then_shown(client, response, case)
        assert snapshot(case) == before
        html = page.content.decode()
        expected = escape(
            f"The reason “{other.title}” belongs to “{other.criterion.title}”, "
            "which is not marked failed"
        )
        assert expected in html
        assert "no longer available" not in html
        # What was typed for the valid reason is kept, and it stays ticked.
        assert "typed 503" in html
        assert f'value="{errors.pk}" checked' in html

    @pytest.mark.parametrize("how", ["retired", "deleted"])
    def test_deny_with_a_reason_no_longer_in_the_catalogue(self, reviewer, how):
        case = held_case(reviewer)
        fail_check(case, reviewer, "error_handling")
        reason = DenialReason.objects.create(
            code="temporary",
            criterion=case.checks.get(criterion__code="error_handling").criterion,
            title="Temporary reason",
            support_text="x",
        )
        reason_id = reason.pk
        client = client_for(reviewer)
        assert reason.title in client.get(case_url(case)).content.decode()
        if how == "retired":
            DenialReason.objects.filter(pk=reason.pk).update(is_active=False)
            expected = "“Temporary reason” was retired; reload the page"
        else:
            reason.delete()
            expected = "no longer exists; reload the page"
        before = snapshot(case)
        response = client.post(action_url(case, "deny"), {"reasons": [reason_id]})
        page = refused_then_shown(client, response, case)
        assert expected in page.content.decode()
        assert snapshot(case) == before

    def test_deny_keeps_the_typed_detail_when_refused(self, reviewer, senior):
        case = held_case(reviewer)
        fail_check(case, reviewer)
        client = client_for(reviewer)
        reason = DenialReason.objects.filter(criterion__code="error_handling").first()
        services.review_case_reassign(actor=senior, case_id=case.pk, assignee=senior)
        before = snapshot(case)
        response = client.post(
            action_url(case, "deny"),
            {"reasons": [reason.pk], f"detail-{reason.pk}": "typed detail"},
        )
        page = refused_then_shown(client, response, case)
        assert snapshot(case) == before
        assert "You do not hold" in page.content.decode()


# --- forged posts ---------------------------------------------------------------------


def _prepare(action: str, reviewer, senior) -> tuple[ReviewCase, dict]:
    """A case in the state where ``action`` would be allowed to the right person."""
    if action == "claim":
        return make_case(), {}
    case = held_case(reviewer)
    if action == "take":
        services.review_case_escalate(actor=reviewer, case_id=case.pk, note="why")
        return case, {}
    if action == "escalate":
        return case, {"note": "forged"}
    if action == "reassign":
        return case, {"assignee": senior.pk}
    if action == "approve":
        pass_all_checks(case, reviewer)
        return case, {}
    if action == "deny":
        fail_check(case, reviewer)
        reason = DenialReason.objects.filter(criterion__code="error_handling").first()
        return case, {"reasons": [reason.pk]}
    if action == "checks":
        data = {}
        for check in case.checks.all():
            data[f"check-{check.criterion_id}-result"] = "fail"
            data[f"check-{check.criterion_id}-version"] = check.version
        return case, data
    return case, {}


ACTIONS = [
    "claim",
    "release",
    "escalate",
    "take",
    "reassign",
    "checks",
    "approve",
    "deny",
]


class TestForgedPosts:
    @pytest.mark.parametrize("action", ACTIONS)
    @pytest.mark.parametrize("role", ["support", "admin_user"])
    def test_roles_without_review_permission(
        self, request, role, action, reviewer, senior
    ):
        case, data = _prepare(action, reviewer, senior)
        before = snapshot(case)
        response = client_for(request.getfixturevalue(role)).post(
            action_url(case, action), data
        )
        assert response.status_code == 403
        assert snapshot(case) == before

    @pytest.mark.parametrize("action", ACTIONS)
    def test_anonymous(self, db, action, reviewer, senior):
        case, data = _prepare(action, reviewer, senior)
        before = snapshot(case)
        response = Client().post(action_url(case, action), data)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")
        assert snapshot(case) == before

    @pytest.mark.parametrize(
        "action", ["release", "escalate", "checks", "approve", "deny"]
    )
    def test_reviewer_who_does_not_hold_the_case(
        self, action, reviewer, reviewer2, senior
    ):
        case, data = _prepare(action, reviewer, senior)
        before = snapshot(case)
        response = client_for(reviewer2).post(action_url(case, action), data)
        assert response.status_code == 302
        assert response["Location"] == case_url(case)
        text = " ".join(messages_of(response))
        assert "You do not hold" in text or "not marked failed" in text
        assert snapshot(case) == before

    @pytest.mark.parametrize("action", ["take", "reassign"])
    def test_non_senior_reviewer(self, action, reviewer, reviewer2, senior):
        case, data = _prepare(action, reviewer, senior)
        before = snapshot(case)
        response = client_for(reviewer2).post(action_url(case, action), data)
        assert response.status_code == 403
        assert snapshot(case) == before


# --- error pages ----------------------------------------------------------------------


def error_reason(response) -> str:
    html = response.content.decode()
    match = re.search(r'data-testid="error-reason">(.*?)</p>', html, re.S)
    assert match, html
    return " ".join(match.group(1).split())


class TestErrorPages:
    """403 / 404 / 405 say in words what happened, inside the app's header."""

    def assert_in_the_app(self, response, home_label: str) -> None:
        html = response.content.decode()
        assert 'class="rd-nav"' in html  # the header's navigation
        assert 'id="logout-form"' in html  # and the user's links
        assert f'href="/" data-testid="error-home">{home_label}</a>' in html

    def test_senior_opening_the_support_lookup(self, senior):
        response = client_for(senior).get("/reviews/lookup/")
        assert response.status_code == 403
        assert error_reason(response).startswith("This page is for support staff")
        html = response.content.decode()
        assert "Your role does not allow this" in html
        assert "<strong>Senior reviewer</strong>" in html
        self.assert_in_the_app(response, "Back to the review queue")

    @pytest.mark.parametrize("method", ["get", "post"])
    def test_support_opening_an_action(self, support, method):
        case = make_case()
        before = snapshot(case)
        response = getattr(client_for(support), method)(action_url(case, "claim"))
        assert response.status_code == 403
        assert error_reason(response) == "Claiming a case is for reviewers."
        self.assert_in_the_app(response, "Back to the support lookup")
        assert snapshot(case) == before

    def test_reviewer_taking_an_escalated_case(self, reviewer, reviewer2):
        case = held_case(reviewer2)
        services.review_case_escalate(actor=reviewer2, case_id=case.pk, note="?")
        response = client_for(reviewer).post(action_url(case, "take"))
        assert response.status_code == 403
        assert error_reason(response) == (
            "Taking an escalated case is for senior reviewers."
        )

    def test_user_without_a_role(self, db):
        nobody = make_user(None, "nobody@staff.example")
        response = client_for(nobody).get(QUEUE)
        assert response.status_code == 403
        assert "for reviewers, senior reviewers and support" in error_reason(response)
        assert "with no role yet" in response.content.decode()
        self.assert_in_the_app(response, "Back to the start page")

    def test_opening_an_action_address_says_to_use_the_button(self, reviewer):
        case = make_case()
        before = snapshot(case)
        response = client_for(reviewer).get(action_url(case, "claim"))
        assert response.status_code == 405
        assert response["Allow"] == "POST"
        assert "“Claim this case” is a button on the case page" in error_reason(
            response
        )
        assert f'href="{case_url(case)}" data-testid="error-back"' in (
            response.content.decode()
        )
        assert snapshot(case) == before
        claim_next = client_for(reviewer).get(CLAIM_NEXT)
        assert claim_next.status_code == 405
        assert "oldest queued case" in error_reason(claim_next)
        assert snapshot(case) == before

    def test_missing_case(self, reviewer):
        response = client_for(reviewer).get(case_url(999_999))
        assert response.status_code == 404
        assert error_reason(response) == "There is no case RC-999999."
        self.assert_in_the_app(response, "Back to the review queue")

    def test_unknown_address_for_staff(self, support):
        response = client_for(support).get("/reviews/nothing-here/")
        assert response.status_code == 404
        assert "There is nothing here" in response.content.decode()
        self.assert_in_the_app(response, "Back to the support lookup")

    def test_outside_the_app_the_page_is_plain(self, rf):
        from django.contrib.auth.models import AnonymousUser
        from django.template.loader import render_to_string

        request = rf.get("/somewhere/")
        request.user = AnonymousUser()
        html = render_to_string(
            "404.html",
            {"request_path": "/somewhere/", "exception": "Resolver404"},
            request=request,
        )
        assert "There is nothing here" in html
        assert "No page is at <code>/somewhere/</code>." in html
        assert 'class="rd-nav"' not in html and "logout-form" not in html
        assert 'href="/" data-testid="error-home">Back to the start page' in html


# --- indexes (PostgreSQL) ---------------------------------------------------------


def _page_query_plan(client, params: dict) -> str:
    """EXPLAIN of the SQL the queue page really ran against the case table: the
    list itself and, when shown, the notices above it (one query)."""
    with CaptureQueriesContext(connection) as queries:
        assert client.get(QUEUE, params).status_code == 200
    page_sql = [
        query["sql"]
        for query in queries.captured_queries
        if 'FROM "reviews_reviewcase"' in query["sql"]
    ]
    assert 1 <= len(page_sql) <= 2, page_sql
    plans = []
    with connection.cursor() as cursor:
        # Tiny test tables would be scanned anyway; this asks whether an index
        # *can* serve the query, which is what matters on a million rows.
        cursor.execute("SET LOCAL enable_seqscan = off")
        for sql in page_sql:
            cursor.execute("EXPLAIN " + sql)
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
        cursor.execute("RESET enable_seqscan")
    return "\n\n".join(plans)


@pytest.mark.postgres
class TestQueueUsesIndexes:
    @pytest.fixture
    def client(self, reviewer):
        for n in range(5):
            with_address(make_case(account=make_account(name=f"Indexed Foods {n}")))
        return client_for(reviewer)

    @pytest.mark.parametrize(
        "params",
        [
            {},
            {"state": "queued"},
            {"state": "approved"},
            {"state": "all"},
            {"assigned": "mine"},
            {"q": "RC-000001"},
            {"q": "dev1@partner1.example"},
            {"q": "Indexed Foods"},
        ],
        ids=repr,
    )
    def test_no_sequential_scan_of_the_case_table(self, client, params):
        plan = _page_query_plan(client, params)
        assert "Seq Scan on reviews_reviewcase" not in plan, plan
        assert "Seq Scan on accounts_developeraccountemail" not in plan, plan

    def test_key_id_search(self, client):
        key = ApiKey.objects.first()
        plan = _page_query_plan(client, {"q": key.platform_key_id})
        assert "Seq Scan on reviews_reviewcase" not in plan, plan

    def test_notices_for_a_senior_who_holds_cases(self, senior, reviewer):
        held_case(senior)
        escalated = held_case(reviewer)
        services.review_case_escalate(actor=reviewer, case_id=escalated.pk, note="?")
        plan = _page_query_plan(client_for(senior), {})
        assert "Seq Scan on reviews_reviewcase" not in plan, plan

    def test_partner_name_search_uses_the_trigram_index(self, client):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM pg_indexes WHERE indexname = 'rd_account_name_trgm_idx'"
            )
            assert cursor.fetchone(), "migration 0003 did not create the name index"
        plan = _page_query_plan(client, {"q": "Indexed Foods"})
        assert "rd_account_name_trgm_idx" in plan, plan
