"""Staff users and roles (Admin role only, no escalation); partners read-only."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import DeveloperAccount, User
from reviews.models import CaseEvent
from tests.factories import make_user
from tests.reviews.test_admin_lookup import partner

USERS = "/accounts/user/"
GROUPS = "/auth/group/"
PARTNERS = "/accounts/developeraccount/"


def group_id(name: str) -> int:
    return Group.objects.get(name=name).pk


def users_state():
    return (
        list(
            User.objects.order_by("pk").values_list(
                "pk", "email", "full_name", "is_active", "is_staff", "is_superuser"
            )
        ),
        sorted(
            User.groups.through.objects.values_list("user_id", "group_id"),
        ),
        User.user_permissions.through.objects.count(),
        sorted(
            Group.permissions.through.objects.values_list("group_id", "permission_id")
        ),
        list(User.objects.order_by("pk").values_list("password", flat=True)),
        LogEntry.objects.count(),
        CaseEvent.objects.count(),
    )


def change_form(user: User, **changes) -> dict:
    data = {
        "email": user.email,
        "full_name": user.full_name,
        "groups": list(user.groups.values_list("pk", flat=True)),
        "is_active": "on" if user.is_active else "",
        "is_staff": "on" if user.is_staff else "",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value != ""}


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser(email="root@staff.example", password="pw")


class TestAdminRoleManagesUsers:
    def test_list_shows_roles(self, client, admin_user, reviewer, support):
        client.force_login(admin_user)
        response = client.get(USERS)
        assert response.status_code == 200
        html = response.content.decode()
        assert "reviewer@staff.example" in html and "Support" in html

    def test_list_query_count_is_flat(self, client, admin_user):
        client.force_login(admin_user)
        client.get(USERS)
        with CaptureQueriesContext(connection) as few:
            client.get(USERS)
        for n in range(8):
            make_user("Reviewer", f"r{n}@staff.example")
        with CaptureQueriesContext(connection) as many:
            client.get(USERS)
        assert len(few) == len(many)

    def test_add_user_with_password_and_role(self, client, admin_user):
        client.force_login(admin_user)
        response = client.post(
            f"{USERS}add/",
            {
                "email": "new.reviewer@staff.example",
                "full_name": "Nia New",
                "usable_password": "true",
                "password1": "a-long-passphrase-42",
                "password2": "a-long-passphrase-42",
                "groups": [group_id("Reviewer")],
                # Forged: not on an Admin-role user's form.
                "is_superuser": "on",
                "user_permissions": [Permission.objects.get(codename="delete_user").pk],
            },
        )
        assert response.status_code == 302, response.content.decode()[:3000]
        user = User.objects.get(email="new.reviewer@staff.example")
        assert user.check_password("a-long-passphrase-42")
        assert user.full_name == "Nia New"
        assert list(user.groups.values_list("name", flat=True)) == ["Reviewer"]
        assert not user.is_superuser
        assert not user.user_permissions.exists()
        assert user.is_staff and user.is_active
        assert user.has_perm("reviews.work_reviewcase")
        assert LogEntry.objects.filter(object_id=str(user.pk)).exists()
        assert client.login(email=user.email, password="a-long-passphrase-42")

    def test_duplicate_email_in_other_case_is_refused(
        self, client, admin_user, reviewer
    ):
        client.force_login(admin_user)
        before = users_state()
        response = client.post(
            f"{USERS}add/",
            {
                "email": "REVIEWER@staff.example",
                "usable_password": "true",
                "password1": "a-long-passphrase-42",
                "password2": "a-long-passphrase-42",
            },
        )
        assert response.status_code == 200
        assert "already exists" in response.content.decode()
        assert users_state() == before

    def test_change_roles_and_deactivate(self, client, admin_user, reviewer):
        client.force_login(admin_user)
        response = client.post(
            f"{USERS}{reviewer.pk}/change/",
            change_form(
                reviewer,
                groups=[group_id("Senior reviewer")],
                is_active="",
                full_name="Rita R.",
            ),
        )
        assert response.status_code == 302, response.content.decode()[:3000]
        reviewer.refresh_from_db()
        assert reviewer.full_name == "Rita R."
        assert not reviewer.is_active
        assert list(reviewer.groups.values_list("name", flat=True)) == [
            "Senior reviewer"
        ]

    def test_forged_superuser_and_permissions_are_ignored(
        self, client, admin_user, reviewer
    ):
        client.force_login(admin_user)
        delete_user = Permission.objects.get(codename="delete_user")
        for target in (reviewer, admin_user):
            response = client.post(
                f"{USERS}{target.pk}/change/",
                change_form(
                    target, is_superuser="on", user_permissions=[delete_user.pk]
                ),
            )
            assert response.status_code == 302
            target.refresh_from_db()
            assert not target.is_superuser
            assert not target.user_permissions.exists()
        form = client.get(f"{USERS}{reviewer.pk}/change/").content.decode()
        assert 'name="is_superuser"' not in form
        assert 'name="user_permissions"' not in form
        assert not admin_user.has_perm("accounts.delete_user")

    def test_only_role_groups_can_be_given(self, client, admin_user, reviewer):
        powerful = Group.objects.create(name="Everything")
        powerful.permissions.set(Permission.objects.all())
        client.force_login(admin_user)
        before = users_state()
        for target in (reviewer, admin_user):
            response = client.post(
                f"{USERS}{target.pk}/change/",
                change_form(target, groups=[powerful.pk]),
            )
            assert response.status_code == 200
            assert "Select a valid choice" in response.content.decode()
        assert users_state() == before
        form = client.get(f"{USERS}{reviewer.pk}/change/").content.decode()
        assert "Everything" not in form

    def test_superuser_accounts_are_out_of_reach(self, client, admin_user, superuser):
        client.force_login(admin_user)
        before = users_state()
        view = client.get(f"{USERS}{superuser.pk}/change/")
        assert view.status_code == 200
        assert 'name="_save"' not in view.content.decode()
        forged = client.post(
            f"{USERS}{superuser.pk}/change/",
            change_form(superuser, email="mine@staff.example"),
        )
        assert forged.status_code == 403
        password = client.post(
            f"{USERS}{superuser.pk}/password/",
            {
                "usable_password": "true",
                "password1": "taken-over-12345",
                "password2": "taken-over-12345",
            },
        )
        assert password.status_code == 403
        assert users_state() == before

    def test_admin_role_sets_another_staff_password(self, client, admin_user, reviewer):
        client.force_login(admin_user)
        response = client.post(
            f"{USERS}{reviewer.pk}/password/",
            {
                "usable_password": "true",
                "password1": "fresh-passphrase-77",
                "password2": "fresh-passphrase-77",
            },
        )
        assert response.status_code == 302
        reviewer.refresh_from_db()
        assert reviewer.check_password("fresh-passphrase-77")

    def test_users_are_never_deleted(self, client, admin_user, reviewer, superuser):
        before = users_state()
        for user in (admin_user, superuser):
            client.force_login(user)
            response = client.post(f"{USERS}{reviewer.pk}/delete/", {"post": "yes"})
            assert response.status_code == 403
        assert users_state() == before

    def test_roles_are_read_only_for_the_admin_role(self, client, admin_user):
        client.force_login(admin_user)
        reviewer_group = Group.objects.get(name="Reviewer")
        assert client.get(GROUPS).status_code == 200
        page = client.get(f"{GROUPS}{reviewer_group.pk}/change/")
        assert page.status_code == 200
        assert 'name="_save"' not in page.content.decode()
        before = users_state()
        everything = list(Permission.objects.values_list("pk", flat=True))
        forged = client.post(
            f"{GROUPS}{reviewer_group.pk}/change/",
            {"name": "Reviewer", "permissions": everything},
        )
        assert forged.status_code == 403
        assert client.post(f"{GROUPS}add/", {"name": "Mine"}).status_code == 403
        assert users_state() == before

    def test_superuser_may_grant_superuser(self, client, superuser, reviewer):
        client.force_login(superuser)
        form = client.get(f"{USERS}{reviewer.pk}/change/").content.decode()
        assert 'name="is_superuser"' in form
        response = client.post(
            f"{USERS}{reviewer.pk}/change/", change_form(reviewer, is_superuser="on")
        )
        assert response.status_code == 302
        reviewer.refresh_from_db()
        assert reviewer.is_superuser


class TestOtherRolesCannotManageUsers:
    @pytest.mark.parametrize("role", ["reviewer", "senior", "support"])
    def test_refused(self, client, request, role, admin_user):
        actor = request.getfixturevalue(role)
        client.force_login(actor)
        before = users_state()
        assert client.get(USERS).status_code == 403
        assert client.get(GROUPS).status_code == 403
        for target in (admin_user, actor):
            response = client.post(
                f"{USERS}{target.pk}/change/",
                change_form(target, is_superuser="on", groups=[group_id("Admin")]),
            )
            assert response.status_code == 403
        response = client.post(
            f"{USERS}add/",
            {
                "email": "sneaky@staff.example",
                "usable_password": "true",
                "password1": "a-long-passphrase-42",
                "password2": "a-long-passphrase-42",
            },
        )
        assert response.status_code == 403
        response = client.post(
            f"{USERS}{admin_user.pk}/password/",
            {
                "usable_password": "true",
                "password1": "taken-over-12345",
                "password2": "taken-over-12345",
            },
        )
        assert response.status_code == 403
        assert users_state() == before

    def test_anonymous(self, client, admin_user):
        before = users_state()
        for url in (USERS, f"{USERS}{admin_user.pk}/change/", GROUPS):
            response = client.get(url)
            assert response.status_code == 302
            assert response["Location"].startswith("/login/")
        client.post(
            f"{USERS}{admin_user.pk}/change/",
            change_form(admin_user, is_superuser="on"),
        )
        assert users_state() == before


class TestPartnersReadOnly:
    @pytest.mark.parametrize("role", ["support", "reviewer", "senior"])
    def test_staff_with_view_permission_read(self, client, request, role, db):
        account = partner(
            name="Weeknight <Recipes>",
            former=("old@weeknight.example",),
            platform_account_id="acct_ro",
        )
        client.force_login(request.getfixturevalue(role))
        listing = client.get(PARTNERS)
        assert listing.status_code == 200
        search = client.get(PARTNERS, {"q": "OLD@weeknight.example"})
        assert [a.pk for a in search.context["cl"].result_list] == [account.pk]
        page = client.get(f"{PARTNERS}{account.pk}/change/")
        assert page.status_code == 200
        html = page.content.decode()
        assert 'name="_save"' not in html
        assert "Weeknight &lt;Recipes&gt;" in html
        assert "old@weeknight.example" in html
        assert "/reviews/lookup/?q=acct_ro" in html

    @pytest.mark.parametrize("role", ["support", "reviewer", "superuser"])
    def test_no_writes(self, client, request, role, db):
        account = partner(platform_account_id="acct_ro2")
        client.force_login(request.getfixturevalue(role))
        before = list(DeveloperAccount.objects.values())
        logs = LogEntry.objects.count()
        response = client.post(
            f"{PARTNERS}{account.pk}/change/",
            {"name": "Changed", "contact_email": "x@evil.example"},
        )
        assert response.status_code == 403
        assert client.post(f"{PARTNERS}add/", {"name": "New"}).status_code == 403
        response = client.post(f"{PARTNERS}{account.pk}/delete/", {"post": "yes"})
        assert response.status_code == 403
        assert list(DeveloperAccount.objects.values()) == before
        assert LogEntry.objects.count() == logs

    def test_admin_role_and_anonymous_cannot_see(self, client, admin_user):
        assert client.get(PARTNERS).status_code == 302
        client.force_login(admin_user)
        assert client.get(PARTNERS).status_code == 403
