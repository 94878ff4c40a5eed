"""The criteria and denial-reason catalogues: edited by the Admin role only.

Everybody else with the view permission (reviewers, seniors, support) reads them.
A catalogue entry used by any case is retired (``is_active`` off), never deleted:
past cases keep their checklist rows and their frozen reason texts
(``CaseDenialReason.title`` / ``support_text``), so retiring or rewording a reason
never changes what support reads for a past decision. Deleting is offered only
for an entry nothing refers to yet (a mistake just made).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import ProtectedError
from django.http import HttpResponseRedirect
from django.urls import reverse

from reviews.models import CaseDenialReason, CheckResult, Criterion, DenialReason

# Said on the 403 page to roles that read the catalogues but may not edit them.
ADMINS_ONLY = (
    "Editing the criteria and denial-reason catalogues is for admins; your role "
    "can read them."
)


def _in_use(obj) -> bool:
    if isinstance(obj, Criterion):
        return (
            CheckResult.objects.filter(criterion=obj).exists()
            or DenialReason.objects.filter(criterion=obj).exists()
        )
    return CaseDenialReason.objects.filter(reason=obj).exists()


class CatalogueAdmin(admin.ModelAdmin):
    """Shared behaviour: retire / reactivate instead of delete."""

    actions = ["retire_selected", "reactivate_selected"]
    noun = "entry"
    in_use_text = ""

    def get_readonly_fields(self, request, obj=None):
        # The code is in audit payloads and seed data: fixed once created.
        return ["code"] if obj is not None else []

    def get_actions(self, request):
        actions = super().get_actions(request)
        # Bulk delete would hit PROTECT halfway through: retire instead.
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request, obj=None):
        if not super().has_delete_permission(request, obj):
            return False
        return obj is None or not _in_use(obj)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        adding = object_id is None
        if (adding and not self.has_add_permission(request)) or (
            not adding
            and request.method == "POST"
            and not self.has_change_permission(request)
        ):
            raise PermissionDenied(ADMINS_ONLY)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        if not super().has_delete_permission(request):
            raise PermissionDenied(ADMINS_ONLY)
        obj = self.get_object(request, object_id)
        if obj is not None and super().has_delete_permission(request, obj):
            if _in_use(obj):
                return self._refuse_delete(request, obj)
            try:
                return super().delete_view(request, object_id, extra_context)
            except ProtectedError:
                # A case started using it between the page load and the click;
                # the delete (and its log entry) rolled back.
                return self._refuse_delete(request, obj)
        return super().delete_view(request, object_id, extra_context)

    def _refuse_delete(self, request, obj):
        self.message_user(
            request,
            f"“{obj}” cannot be deleted: {self.in_use_text} To stop it being used, "
            "untick “active” and save: it is then retired.",
            messages.ERROR,
        )
        return HttpResponseRedirect(
            reverse(f"admin:reviews_{self.opts.model_name}_change", args=[obj.pk])
        )

    def _set_active(self, request, queryset, active: bool) -> None:
        changed = 0
        with transaction.atomic():
            for obj in queryset.select_for_update().filter(is_active=not active):
                obj.is_active = active
                obj.save(update_fields=["is_active"])
                self.log_change(
                    request,
                    obj,
                    [{"changed": {"fields": ["active"]}}],
                )
                changed += 1
        verb = "reactivated" if active else "retired"
        self.message_user(
            request, f"{changed} {self.noun}(s) {verb}.", messages.SUCCESS
        )

    @admin.action(
        description="Retire selected (no longer offered)", permissions=["change"]
    )
    def retire_selected(self, request, queryset):
        self._set_active(request, queryset, False)

    @admin.action(description="Reactivate selected", permissions=["change"])
    def reactivate_selected(self, request, queryset):
        self._set_active(request, queryset, True)


@admin.register(Criterion)
class CriterionAdmin(CatalogueAdmin):
    noun = "criterion"
    in_use_text = "cases have been checked against it or denial reasons belong to it."
    list_display = ["title", "code", "applies_to", "order", "is_active"]
    list_display_links = ["title"]
    list_filter = ["is_active", "applies_to"]
    search_fields = ["title", "code"]
    ordering = ["order", "id"]
    fieldsets = [
        (None, {"fields": ["code", "title", "guidance"]}),
        (
            "Use",
            {
                "fields": ["applies_to", "order", "is_active"],
                "description": (
                    "Changes apply to cases opened from now on; cases already open "
                    "keep the checklist they were opened with. Rewording the title "
                    "or guidance is shown on past checklists too: for a different "
                    "rule, add a new criterion and retire this one."
                ),
            },
        ),
    ]


@admin.register(DenialReason)
class DenialReasonAdmin(CatalogueAdmin):
    noun = "denial reason"
    in_use_text = "past cases were denied with it."
    list_display = ["title", "code", "criterion", "order", "is_active"]
    list_display_links = ["title"]
    list_filter = ["is_active", "criterion"]
    list_select_related = ["criterion"]
    search_fields = ["title", "code"]
    ordering = ["criterion__order", "order", "id"]
    fieldsets = [
        (None, {"fields": ["code", "criterion", "title"]}),
        (
            "What support reads to the partner",
            {
                "fields": ["support_text"],
                "description": (
                    "Say what is wrong and how to fix it. Cases already denied "
                    "keep the text they were denied with; edits apply to future "
                    "denials only."
                ),
            },
        ),
        (
            "Use",
            {
                "fields": ["order", "is_active"],
                "description": (
                    "Untick “active” to retire the reason: reviewers can no longer "
                    "choose it; past cases still show it as it was."
                ),
            },
        ),
    ]
