"""Staff users and roles (Admin role), partners (read-only).

Escalation rules, decided for Review Desk:
- a role is a group made by the roles migration; an Admin-role user gives staff
  those roles and nothing else: the superuser flag and per-user permissions are
  not on their form (a forged POST of those fields is ignored), and only the
  role groups can be chosen;
- a superuser account can be changed (and its password set) only by a superuser;
- the role groups themselves (their permissions) are read-only to everyone but
  superusers: they are defined by the migration, not edited in the browser.
Users are never deleted (cases refer to them); untick "active" instead.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm
from django.contrib.auth.forms import UserChangeForm as DjangoUserChangeForm
from django.contrib.auth.models import Group
from django.db.models import Prefetch
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from accounts.models import DeveloperAccount, User

# The groups made by accounts/migrations/0002_roles.py (DESIGN §2).
ROLE_NAMES = ("Reviewer", "Senior reviewer", "Support", "Admin")


class UserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "full_name")

    def clean_email(self):
        email = User.objects.normalize_email(self.cleaned_data.get("email", ""))
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(
                "A user with this email address already exists; open that user "
                "instead of adding a new one."
            )
        return email


class UserChangeForm(DjangoUserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    list_display = [
        "email",
        "full_name",
        "roles",
        "is_active",
        "is_staff",
        "is_superuser",
        "last_login",
    ]
    list_display_links = ["email"]
    list_filter = ["groups", "is_active", "is_staff", "is_superuser"]
    search_fields = ["email", "full_name"]
    ordering = ["email"]
    filter_horizontal = ["user_permissions"]
    readonly_fields = ["last_login", "date_joined"]

    person = (None, {"fields": ["email", "password", "full_name"]})
    access = (
        "Roles and access",
        {
            "fields": ["groups", "is_active", "is_staff"],
            "description": (
                "Roles decide what the user may do. Staff status lets them log in; "
                "untick “active” to block a user who leaves (users are never "
                "deleted: cases refer to them)."
            ),
        },
    )
    superuser_only = (
        "Superuser only",
        {
            "fields": ["is_superuser", "user_permissions"],
            "classes": ["collapse"],
            "description": (
                "Superusers may do everything. Prefer roles to single permissions."
            ),
        },
    )
    dates = ("Dates", {"fields": ["last_login", "date_joined"]})
    add_person = (
        None,
        {
            "classes": ["wide"],
            "fields": [
                "email",
                "full_name",
                "usable_password",
                "password1",
                "password2",
            ],
        },
    )
    add_access = ("Roles", {"fields": ["groups"]})

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [self.add_person, self.add_access]
        if request.user.is_superuser:
            return [self.person, self.access, self.superuser_only, self.dates]
        return [self.person, self.access, self.dates]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .prefetch_related(
                Prefetch("groups", queryset=Group.objects.order_by("name"))
            )
        )

    def formfield_for_manytomany(self, db_field, request=None, **kwargs):
        if db_field.name == "groups":
            queryset = Group.objects.order_by("name")
            if not request.user.is_superuser:
                queryset = queryset.filter(name__in=ROLE_NAMES)
            kwargs["queryset"] = queryset
            kwargs["widget"] = forms.CheckboxSelectMultiple
            kwargs["required"] = False
            formfield = super().formfield_for_manytomany(db_field, request, **kwargs)
            formfield.label = "Roles"
            formfield.help_text = ""
            return formfield
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    # Users are deactivated, never deleted.
    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="roles")
    def roles(self, obj):
        return ", ".join(group.name for group in obj.groups.all()) or "—"


admin.site.unregister(Group)


@admin.register(Group)
class RoleAdmin(DjangoGroupAdmin):
    """The roles. Their permissions come from the roles migration."""

    list_display = ["name", "permission_count"]

    def get_queryset(self, request):
        from django.db.models import Count

        return super().get_queryset(request).annotate(Count("permissions"))

    @admin.display(description="permissions", ordering="permissions__count")
    def permission_count(self, obj):
        return obj.permissions__count

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


# --- partners (read-only: they change only through the platform's events) ------------


@admin.register(DeveloperAccount)
class DeveloperAccountAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "platform_account_id",
        "contact_email",
        "wants_affiliate",
        "created_at",
    ]
    list_filter = ["wants_affiliate"]
    search_fields = ["platform_account_id"]
    search_help_text = (
        "Contact email (current or former), platform account id, key id, case "
        "reference or the start of the organisation name."
    )
    ordering = ["-id"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    fieldsets = [
        (
            None,
            {"fields": ["name", "platform_account_id", "lookup_link"]},
        ),
        (
            "Contact",
            {"fields": ["contact_name", "contact_email", "addresses"]},
        ),
        (
            "Help desk and affiliate",
            {
                "fields": [
                    "help_desk_account_id",
                    "wants_affiliate",
                    "tastemakers_account_id",
                    "affiliate_partner_id",
                ]
            },
        ),
        ("Keys", {"fields": ["key_list"]}),
        ("Dates", {"fields": ["created_at", "updated_at"]}),
    ]
    readonly_fields = [
        "name",
        "platform_account_id",
        "lookup_link",
        "contact_name",
        "contact_email",
        "addresses",
        "help_desk_account_id",
        "wants_affiliate",
        "tastemakers_account_id",
        "affiliate_partner_id",
        "key_list",
        "created_at",
        "updated_at",
    ]

    def get_paginator(self, request, queryset, per_page, *args, **kwargs):
        from reviews.admin.lookup import CappedCountPaginator

        return CappedCountPaginator(queryset, per_page, *args, **kwargs)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_search_results(self, request, queryset, search_term):
        """The support lookup's indexed matching, not a scan of every column."""
        from reviews.selectors import account_ids_matching

        if not search_term.strip():
            return queryset, False
        return queryset.filter(pk__in=account_ids_matching(search_term)), False

    @admin.display(description="cases")
    def lookup_link(self, obj):
        return format_html(
            '<a href="{}?{}">Look up this partner\'s cases and denial reasons</a>',
            reverse("reviews_lookup"),
            urlencode({"q": obj.platform_account_id}),
        )

    @admin.display(description="all addresses used")
    def addresses(self, obj):
        return ", ".join(
            obj.emails.order_by("first_seen_at", "id").values_list("email", flat=True)
        )

    @admin.display(description="production keys")
    def key_list(self, obj):
        keys = obj.keys.order_by("-id")[:50]
        if not keys:
            return "—"
        return format_html_join(
            format_html("<br>"),
            '<a href="{}">{}</a> {} — {}',
            (
                (
                    reverse("admin:reviews_apikey_change", args=[key.pk]),
                    key.platform_key_id,
                    key.name,
                    key.get_status_display(),
                )
                for key in keys
            ),
        )
