"""Support: the lookup page, the email outbox (resend) and read-only keys.

Support staff answer one question all day: "why was my key denied?". The lookup
page answers it from one search box; the notifications list finds emails that
failed or bounced. Nothing here writes except ``notification_resend``.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.formats import date_format
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.timezone import localtime

from reviews import selectors, services
from reviews.admin.errors import LOOKUP_IS_FOR, RESEND_IS_FOR, method_not_allowed
from reviews.errors import ActionRefused
from reviews.models import (
    ApiKey,
    Notification,
    ReviewCase,
    case_pk_from_reference,
    case_reference,
)

LOOKUP_PERM = "reviews.lookup_reviewcase"
RESEND_PERM = "reviews.resend_notification"

# Provider tracking events (anymail's normalised names) that mean the partner
# did not get the email.
DELIVERY_PROBLEMS = ("bounced", "rejected", "failed", "complained", "deferred")


def case_change_url(case_id: int) -> str:
    return reverse("admin:reviews_reviewcase_change", args=[case_id])


def email_summary(notification: Notification) -> tuple[str, str]:
    """``(label, tone)`` for an email's state; tone is ok / warn / bad."""
    status = notification.status
    delivery = notification.delivery_status
    if status == Notification.Status.FAILED:
        return "Sending failed", "bad"
    if status == Notification.Status.PENDING:
        if notification.attempts:
            return f"Retrying (attempt {notification.attempts} failed)", "warn"
        return "Waiting to be sent", "warn"
    if delivery in DELIVERY_PROBLEMS:
        return f"Sent, then {delivery}", "bad"
    if delivery == "delivered" or delivery in ("opened", "clicked"):
        return (
            f"Delivered ({delivery})" if delivery != "delivered" else "Delivered",
            "ok",
        )
    if delivery:
        return f"Sent ({delivery})", "ok"
    return "Sent (no delivery report yet)", "ok"


def _safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


# --- the lookup page --------------------------------------------------------------


def support_lookup_view(request: HttpRequest):
    """GET /reviews/lookup/?q=…: partners, cases, reasons and decision emails."""
    if not request.user.has_perm(LOOKUP_PERM):
        raise PermissionDenied(LOOKUP_IS_FOR)
    if request.method not in ("GET", "HEAD"):
        return method_not_allowed(
            request,
            ["GET"],
            text="The support lookup only reads: type into its search box.",
            back_url=reverse("reviews_lookup"),
            back_label="Open the support lookup",
        )
    lookup = selectors.support_lookup_get(query=request.GET.get("q", ""))
    this_page = request.get_full_path()
    for partner in lookup.partners:
        for case in partner.cases:
            case.lookup_url = case_change_url(case.pk)
            if case.previous_case_id:
                case.previous_reference = case_reference(case.previous_case_id)
            for notification in case.lookup_notifications:
                notification.summary, notification.tone = email_summary(notification)
                # The confirmation page comes back here after resending.
                notification.resend_url = "{}?{}".format(
                    reverse(
                        "admin:reviews_notification_resend", args=[notification.pk]
                    ),
                    urlencode({"next": f"{this_page}#case-{case.pk}"}),
                )
    context = {
        **admin.site.each_context(request),
        "title": "Support lookup",
        # The page needs its width; the top navigation links everything.
        "is_nav_sidebar_enabled": False,
        "lookup": lookup,
        "max_cases": selectors.LOOKUP_MAX_CASES,
        "can_resend": request.user.has_perm(RESEND_PERM),
        "decided_states": ReviewCase.DECIDED_STATES,
        "this_page": this_page,
    }
    return TemplateResponse(request, "admin/reviews/lookup.html", context)


# Mounted at /reviews/lookup/ by config/urls.py, inside the admin's login check.
lookup_urlpatterns = [
    path(
        "reviews/lookup/",
        admin.site.admin_view(support_lookup_view),
        name="reviews_lookup",
    ),
]


# --- the email outbox -------------------------------------------------------------


class CappedCountPaginator(Paginator):
    """Counts at most ``CAP`` rows: no exact count of a large outbox per page load."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.CAP].count()


class ProblemFilter(admin.SimpleListFilter):
    title = "needs attention"
    parameter_name = "problem"

    def lookups(self, request, model_admin):
        return [
            ("yes", "Failed or not delivered"),
            ("pending", "Waiting or retrying"),
        ]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(status=Notification.Status.FAILED) | queryset.filter(
                delivery_status__in=DELIVERY_PROBLEMS
            )
        if self.value() == "pending":
            return queryset.filter(status=Notification.Status.PENDING)
        return queryset


class DeliveryFilter(admin.SimpleListFilter):
    """Fixed choices: listing the distinct values would scan the whole outbox."""

    title = "delivery status"
    parameter_name = "delivery"
    CHOICES = [
        ("none", "No report yet"),
        ("delivered", "Delivered"),
        ("bounced", "Bounced"),
        ("rejected", "Rejected"),
        ("failed", "Failed"),
        ("complained", "Complained"),
        ("deferred", "Deferred"),
        ("opened", "Opened"),
        ("clicked", "Clicked"),
    ]

    def lookups(self, request, model_admin):
        return self.CHOICES

    def queryset(self, request, queryset):
        value = self.value()
        if value == "none":
            return queryset.filter(delivery_status="")
        if value in dict(self.CHOICES):
            return queryset.filter(delivery_status=value)
        return queryset


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """Read-only outbox; support resends a decision email through the service."""

    list_display = [
        "case_link",
        "kind",
        "to_email",
        "status_badge",
        "delivery",
        "tries",
        "sent",
        "short_error",
    ]
    list_display_links = None
    list_filter = [ProblemFilter, "status", DeliveryFilter, "kind"]
    # Facet counts would count the whole outbox once per filter choice.
    show_facets = admin.ShowFacets.NEVER
    list_select_related = False
    search_fields = ["case_id"]
    search_help_text = "Case reference (RC-000123) or the provider's message id."
    ordering = ["-id"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    actions = ["resend_selected"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "case_link",
                    "kind",
                    "to_email",
                    "to_name",
                    "status_badge",
                    "attempts",
                    "last_error",
                    "created_at",
                    "sent_at",
                    "times_sent",
                ]
            },
        ),
        (
            "Delivery (from the email provider)",
            {
                "fields": [
                    "delivery_status",
                    "delivery_status_at",
                    "provider_message_id",
                ]
            },
        ),
        ("The email as sent", {"fields": ["subject", "text_body", "html_source"]}),
    ]
    readonly_fields = [
        "case_link",
        "kind",
        "to_email",
        "to_name",
        "status_badge",
        "attempts",
        "last_error",
        "created_at",
        "sent_at",
        "times_sent",
        "delivery_status",
        "delivery_status_at",
        "provider_message_id",
        "subject",
        "text_body",
        "html_source",
    ]
    change_form_template = "admin/reviews/notification/change_form.html"

    # Read-only for everyone: the outbox changes only through services.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_resend_permission(self, request, obj=None):
        return request.user.has_perm(RESEND_PERM)

    def get_list_display_links(self, request, list_display):
        return ["kind"]

    def get_search_results(self, request, queryset, search_term):
        """Indexed lookups only: a case reference or a provider message id."""
        term = search_term.strip()
        if not term:
            return queryset, False
        case_pk = case_pk_from_reference(term)
        if case_pk is not None:
            return queryset.filter(case_id=case_pk), False
        # The partial index on provider_message_id covers non-empty ids only.
        return queryset.filter(provider_message_id=term).exclude(
            provider_message_id=""
        ), False

    @admin.display(description="case", ordering="case_id")
    def case_link(self, obj):
        return format_html(
            '<a class="rd-nowrap" href="{}">{}</a>',
            case_change_url(obj.case_id),
            case_reference(obj.case_id),
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        label, tone = email_summary(obj)
        return format_html(
            '<span class="rd-email rd-email-{}" title="{}">{}</span>',
            tone,
            obj.get_status_display(),
            label,
        )

    @admin.display(description="delivery", ordering="delivery_status")
    def delivery(self, obj):
        return obj.delivery_status or "—"

    @admin.display(description="tries", ordering="attempts")
    def tries(self, obj):
        return obj.attempts

    @admin.display(description="sent", ordering="sent_at")
    def sent(self, obj):
        if not obj.sent_at:
            return "—"
        return format_html(
            '<span class="rd-nowrap" title="{}">{}</span>',
            date_format(localtime(obj.sent_at), "DATETIME_FORMAT"),
            date_format(localtime(obj.sent_at), "j M, H:i"),
        )

    @admin.display(description="last error")
    def short_error(self, obj):
        text = obj.last_error
        if not text:
            return ""
        short = text if len(text) <= 60 else text[:59] + "…"
        return format_html('<span class="rd-error" title="{}">{}</span>', text, short)

    @admin.display(description="text body")
    def text_body(self, obj):
        if not obj.body_text:
            return "(not rendered yet: the body is stored when the email is sent)"
        return format_html('<pre class="rd-email-body">{}</pre>', obj.body_text)

    @admin.display(description="HTML part (source)")
    def html_source(self, obj):
        if not obj.body_html:
            return "—"
        return format_html(
            "<details><summary>Show HTML source</summary>"
            '<pre class="rd-email-body">{}</pre></details>',
            obj.body_html,
        )

    @admin.action(description="Resend decision email…", permissions=["resend"])
    def resend_selected(self, request, queryset):
        if request.POST.get("confirmed") != "yes":
            # First ask, naming each recipient (the delete_selected pattern).
            notifications = list(
                queryset.select_related("case__account")
                .defer("body_text", "body_html", "case__integration")
                .order_by("-id")
            )
            return self._resend_confirm_page(
                request,
                notifications,
                back=reverse("admin:reviews_notification_changelist"),
            )
        done, refused = [], []
        for notification_id in queryset.values_list("pk", flat=True):
            try:
                notification = services.notification_resend(
                    actor=request.user, notification_id=notification_id
                )
            except ActionRefused as exc:
                refused.append(exc.message)
            else:
                done.append(f"{notification.case.reference} to {notification.to_email}")
        if done:
            self.message_user(
                request,
                f"Resending {len(done)} email(s): {', '.join(done)}.",
                messages.SUCCESS,
            )
        for message in refused:
            self.message_user(request, message, messages.ERROR)

    def get_urls(self):
        return [
            path(
                "<int:object_id>/resend/",
                self.admin_site.admin_view(self.resend_view),
                name="reviews_notification_resend",
            ),
            *super().get_urls(),
        ]

    def resend_view(self, request: HttpRequest, object_id: int):
        """/reviews/notification/<pk>/resend/: GET asks "resend to <address>?",
        POST resends the decision email (to the partner's current address)."""
        if not self.has_resend_permission(request):
            raise PermissionDenied(RESEND_IS_FOR)
        notification = get_object_or_404(
            Notification.objects.select_related("case__account").defer(
                "body_text", "body_html", "case__integration"
            ),
            pk=object_id,
        )
        fallback = reverse("admin:reviews_notification_change", args=[notification.pk])
        back = _safe_next(request, fallback)
        if request.method not in ("GET", "HEAD", "POST"):
            return method_not_allowed(
                request,
                ["GET", "POST"],
                text="Resend a decision email with the button on its page.",
                back_url=fallback,
                back_label="Open the email",
            )
        if request.method != "POST":
            return self._resend_confirm_page(request, [notification], back=back)
        try:
            resent = services.notification_resend(
                actor=request.user, notification_id=notification.pk
            )
        except ActionRefused as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.message_user(
                request,
                f"The decision email for {case_reference(notification.case_id)} is "
                f"being sent again, to {resent.to_email} (the partner's current "
                "contact address).",
                messages.SUCCESS,
            )
        return HttpResponseRedirect(back)

    def _resend_confirm_page(
        self, request: HttpRequest, notifications: list[Notification], *, back: str
    ):
        """Ask before resending: which emails, to which address (it may have
        changed since the email was last sent), and which cannot go yet."""
        rows = []
        for notification in notifications:
            account = notification.case.account
            rows.append(
                {
                    "notification": notification,
                    "reference": case_reference(notification.case_id),
                    "kind": notification.get_kind_display().lower(),
                    "to": account.contact_email,
                    "to_name": account.contact_name,
                    "address_changed": bool(notification.to_email)
                    and notification.to_email.lower() != account.contact_email.lower(),
                    "waiting": notification.status == Notification.Status.PENDING,
                    "summary": email_summary(notification)[0],
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "title": "Resend decision email" + ("s" if len(rows) > 1 else ""),
            "is_nav_sidebar_enabled": False,
            "opts": self.opts,
            "rows": rows,
            "ready": [row for row in rows if not row["waiting"]],
            "single": len(rows) == 1,
            "back": back,
            "action_url": reverse(
                "admin:reviews_notification_resend", args=[rows[0]["notification"].pk]
            )
            if len(rows) == 1
            else reverse("admin:reviews_notification_changelist"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/reviews/notification/resend_confirm.html", context
        )

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            "title": "Decision emails",
            "is_nav_sidebar_enabled": False,
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context)

    def render_change_form(self, request, context, *args, **kwargs):
        context["can_resend"] = self.has_resend_permission(request)
        context["is_nav_sidebar_enabled"] = False
        return super().render_change_form(request, context, *args, **kwargs)


# --- keys (read-only) ---------------------------------------------------------------


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Production keys as the platform reported them. Never edited here: the
    status changes only through the review services."""

    list_display = [
        "platform_key_id",
        "account",
        "name",
        "hint",
        "status",
        "status_changed_at",
    ]
    list_filter = ["status"]
    list_select_related = ["account"]
    search_fields = ["platform_key_id"]
    search_help_text = "The platform key id, exactly."
    ordering = ["-id"]
    show_facets = admin.ShowFacets.NEVER
    paginator = CappedCountPaginator
    show_full_result_count = False
    fields = [
        "platform_key_id",
        "account",
        "name",
        "hint",
        "status",
        "status_changed_at",
        "platform_created_at",
        "created_at",
        "lookup_link",
    ]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(platform_key_id=term), False

    @admin.display(description="cases")
    def lookup_link(self, obj):
        return format_html(
            '<a href="{}?{}">Look up this key\'s cases</a>',
            reverse("reviews_lookup"),
            urlencode({"q": obj.platform_key_id}),
        )
