"""Criteria and denial-reason catalogues: Admin role edits, everybody else reads."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.messages import get_messages
from django.utils.html import escape

from accounts.models import User
from reviews import services
from reviews.errors import ActionRefused
from reviews.models import CaseDenialReason, CaseEvent, Criterion, DenialReason
from tests.factories import make_case
from tests.reviews.test_admin_lookup import deny_with, partner

REASONS = "/reviews/denialreason/"
CRITERIA = "/reviews/criterion/"


def reason_form(reason: DenialReason, **changes) -> dict:
    data = {
        "criterion": reason.criterion_id,
        "title": reason.title,
        "support_text": reason.support_text,
        "order": reason.order,
        "is_active": "on" if reason.is_active else "",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value != ""}


def catalogue_state():
    return (
        list(
            DenialReason.objects.order_by("pk").values_list(
                "pk", "code", "title", "support_text", "is_active", "criterion_id"
            )
        ),
        list(
            Criterion.objects.order_by("pk").values_list(
                "pk", "code", "title", "guidance", "is_active", "applies_to"
            )
        ),
        LogEntry.objects.count(),
        CaseEvent.objects.count(),
    )


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser(email="root@staff.example", password="pw")


@pytest.fixture
def used_reason(reviewer):
    """A reason a past case was denied with, and that case."""
    reason = DenialReason.objects.filter(
        is_active=True, criterion__code="error_handling"
    ).first()
    account = partner(platform_account_id="acct_cat")
    case = deny_with(make_case(account=account), reviewer, [(reason, "No 429 backoff")])
    return reason, case


def unused_reason() -> DenialReason:
    return DenialReason.objects.create(
        code="typo_reason",
        title="Made by mistake",
        criterion=Criterion.objects.get(code="terms_compliance"),
        support_text="Nothing.",
    )


class TestAdminRoleEdits:
    def test_add_reason(self, client, admin_user):
        client.force_login(admin_user)
        criterion = Criterion.objects.get(code="error_handling")
        response = client.post(
            f"{REASONS}add/",
            {
                "code": "no_timeout_handling",
                "criterion": criterion.pk,
                "title": "Timeouts not handled",
                "support_text": "Handle HTTP 408 by retrying with backoff.",
                "order": 9,
                "is_active": "on",
            },
        )
        assert response.status_code == 302, response.content.decode()[:2000]
        reason = DenialReason.objects.get(code="no_timeout_handling")
        assert reason.is_active and reason.criterion == criterion
        entry = LogEntry.objects.get(object_id=str(reason.pk))
        assert entry.action_flag == ADDITION and entry.user == admin_user

    def test_edit_and_retire_never_change_past_cases(
        self, client, admin_user, support, used_reason
    ):
        reason, case = used_reason
        frozen_title, frozen_text = reason.title, reason.support_text
        client.force_login(admin_user)
        response = client.post(
            f"{REASONS}{reason.pk}/change/",
            reason_form(
                reason,
                title="Reworded title",
                support_text="Reworded text for future partners.",
                is_active="",
                code="renamed_code",
            ),
        )
        assert response.status_code == 302, response.content.decode()[:2000]
        reason.refresh_from_db()
        assert reason.title == "Reworded title" and not reason.is_active
        assert reason.code != "renamed_code"  # the code is fixed once created
        assert LogEntry.objects.filter(
            object_id=str(reason.pk), action_flag=CHANGE
        ).exists()
        frozen = CaseDenialReason.objects.get(case=case)
        assert (frozen.title, frozen.support_text) == (frozen_title, frozen_text)

        client.force_login(support)
        page = client.get("/reviews/lookup/", {"q": case.reference})
        shown = page.context["lookup"].partners[0].cases[0].lookup_reasons
        assert [(r.title, r.support_text) for r in shown] == [
            (frozen_title, frozen_text)
        ]
        html = page.content.decode()
        assert escape(frozen_title) in html
        assert escape(frozen_text.split("\n")[0][:60]) in html
        assert "No 429 backoff" in html
        assert "Reworded text for future partners." not in html

    def test_retired_reason_cannot_be_chosen(self, client, admin_user, reviewer):
        reason = DenialReason.objects.filter(criterion__code="error_handling").first()
        client.force_login(admin_user)
        client.post(
            REASONS,
            {"action": "retire_selected", "_selected_action": [reason.pk]},
        )
        reason.refresh_from_db()
        assert not reason.is_active
        with pytest.raises(ActionRefused, match="retired"):
            deny_with(make_case(), reviewer, [(reason, "")])

    def test_bulk_retire_and_reactivate_log_each(self, client, admin_user):
        ids = list(
            DenialReason.objects.filter(is_active=True).values_list("pk", flat=True)[:2]
        )
        client.force_login(admin_user)
        response = client.post(
            REASONS, {"action": "retire_selected", "_selected_action": ids}, follow=True
        )
        assert "2 denial reason(s) retired." in [
            str(m) for m in response.context["messages"]
        ]
        assert not DenialReason.objects.filter(pk__in=ids, is_active=True).exists()
        assert LogEntry.objects.filter(object_id__in=[str(i) for i in ids]).count() == 2
        client.post(REASONS, {"action": "reactivate_selected", "_selected_action": ids})
        assert DenialReason.objects.filter(pk__in=ids, is_active=True).count() == 2

    def test_no_bulk_delete_action(self, client, admin_user):
        client.force_login(admin_user)
        html = client.get(REASONS).content.decode()
        assert "retire_selected" in html
        assert "delete_selected" not in html

    def test_used_reason_delete_says_retire_instead(
        self, client, admin_user, used_reason
    ):
        reason, case = used_reason
        client.force_login(admin_user)
        change = client.get(f"{REASONS}{reason.pk}/change/").content.decode()
        assert f"{REASONS}{reason.pk}/delete/" not in change
        before = catalogue_state()
        for method in (client.get, client.post):
            response = method(f"{REASONS}{reason.pk}/delete/", {"post": "yes"})
            assert response.status_code == 302
            assert response["Location"] == f"{REASONS}{reason.pk}/change/"
            texts = [str(m) for m in get_messages(response.wsgi_request)]
            assert any(
                "cannot be deleted: past cases were denied with it" in t
                and "untick “active”" in t
                for t in texts
            ), texts
        assert catalogue_state() == before
        assert DenialReason.objects.filter(pk=reason.pk).exists()

    def test_used_criterion_delete_says_retire_instead(self, client, admin_user):
        make_case()  # its checklist uses every active core criterion
        criterion = Criterion.objects.get(code="error_handling")
        client.force_login(admin_user)
        response = client.post(
            f"{CRITERIA}{criterion.pk}/delete/", {"post": "yes"}, follow=True
        )
        assert response.status_code == 200
        assert any("cannot be deleted" in str(m) for m in response.context["messages"])
        assert Criterion.objects.filter(pk=criterion.pk).exists()

    def test_unused_reason_can_be_deleted(self, client, admin_user):
        reason = unused_reason()
        client.force_login(admin_user)
        assert (
            f"{REASONS}{reason.pk}/delete/"
            in client.get(f"{REASONS}{reason.pk}/change/").content.decode()
        )
        response = client.post(f"{REASONS}{reason.pk}/delete/", {"post": "yes"})
        assert response.status_code == 302
        assert not DenialReason.objects.filter(pk=reason.pk).exists()

    def test_delete_racing_a_denial_is_refused_cleanly(
        self, client, admin_user, reviewer, monkeypatch
    ):
        """A case uses the reason between the check and the delete: no 500."""
        from reviews.admin import catalogue

        reason = unused_reason()
        client.force_login(admin_user)
        deny_with(make_case(), reviewer, [(reason, "")])
        # The page was loaded before the case used it: every check said unused.
        monkeypatch.setattr(catalogue, "_in_use", lambda obj: False)
        monkeypatch.setattr(
            catalogue.DenialReasonAdmin,
            "get_deleted_objects",
            lambda self, objs, request: ([str(objs[0])], {}, set(), []),
        )
        before = catalogue_state()
        response = client.post(
            f"{REASONS}{reason.pk}/delete/", {"post": "yes"}, follow=True
        )
        assert response.status_code == 200
        assert any("cannot be deleted" in str(m) for m in response.context["messages"])
        assert catalogue_state() == before

    def test_superuser_edits_too(self, client, superuser):
        criterion = Criterion.objects.get(code="help_desk_account")
        client.force_login(superuser)
        response = client.post(
            f"{CRITERIA}{criterion.pk}/change/",
            {
                "title": criterion.title,
                "guidance": "Check the id in the help desk.",
                "applies_to": criterion.applies_to,
                "order": criterion.order,
                "is_active": "on",
            },
        )
        assert response.status_code == 302
        criterion.refresh_from_db()
        assert criterion.guidance == "Check the id in the help desk."


class TestOtherRolesOnlyRead:
    @pytest.mark.parametrize("role", ["reviewer", "senior", "support"])
    def test_can_read(self, client, request, role, db):
        client.force_login(request.getfixturevalue(role))
        reason = DenialReason.objects.first()
        assert client.get(REASONS).status_code == 200
        assert client.get(CRITERIA).status_code == 200
        page = client.get(f"{REASONS}{reason.pk}/change/")
        assert page.status_code == 200
        html = page.content.decode()
        assert 'name="_save"' not in html
        assert escape(reason.support_text.split("\n")[0][:40]) in html

    @pytest.mark.parametrize("role", ["reviewer", "senior", "support"])
    def test_forged_writes_are_refused(self, client, request, role, used_reason):
        reason, case = used_reason
        criterion = Criterion.objects.get(code="error_handling")
        before = catalogue_state()
        client.force_login(request.getfixturevalue(role))
        forged = [
            (f"{REASONS}{reason.pk}/change/", reason_form(reason, title="Hacked")),
            (f"{REASONS}add/", reason_form(reason, code="forged", title="Forged")),
            (f"{REASONS}{reason.pk}/delete/", {"post": "yes"}),
            (
                f"{CRITERIA}{criterion.pk}/change/",
                {
                    "title": "Hacked",
                    "guidance": "x",
                    "applies_to": "all",
                    "order": 1,
                },
            ),
            (f"{CRITERIA}{criterion.pk}/delete/", {"post": "yes"}),
        ]
        for url, data in forged:
            response = client.post(url, data)
            assert response.status_code == 403, url
            # The 403 page says who the catalogues are for, in the app's header.
            html = response.content.decode()
            assert (
                "Editing the criteria and denial-reason catalogues is for admins"
                in (html)
            ), url
            assert 'class="rd-nav"' in html, url
        # A bulk action they are not offered does nothing.
        client.post(
            REASONS, {"action": "retire_selected", "_selected_action": [reason.pk]}
        )
        assert catalogue_state() == before
        reason.refresh_from_db()
        assert reason.is_active and reason.title != "Hacked"

    def test_anonymous_is_sent_to_login(self, client, db):
        for url in (REASONS, CRITERIA, f"{REASONS}add/"):
            response = client.get(url)
            assert response.status_code == 302
            assert response["Location"].startswith("/login/")
        before = catalogue_state()
        reason = DenialReason.objects.first()
        client.post(f"{REASONS}{reason.pk}/change/", reason_form(reason, title="X"))
        assert catalogue_state() == before

    def test_admin_role_cannot_decide_cases(self, admin_user):
        """The Admin role manages catalogues; it does not work cases."""
        case = make_case()
        with pytest.raises(ActionRefused):
            services.review_case_claim(actor=admin_user, case_id=case.pk)
