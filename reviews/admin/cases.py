"""The queue (review cases list), the case page and its actions.

A thin UI over ``reviews.services``: every view checks the user's permission
itself, every change is a service call, and every refusal is shown to the user
with nothing changed. The stock change form is replaced by the case page and
never saves a case; cases are never added or deleted here.

Fast on millions of cases: the queue reads one page plus one row (no COUNT),
only the columns it shows, through indexes (see migration 0003), and search is
routed to one indexed lookup per kind of term (``selectors.cases``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib import admin, messages
from django.contrib.admin.options import ShowFacets
from django.contrib.admin.views.main import PAGE_VAR, ChangeList
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from reviews import services
from reviews.admin.errors import CLAIM_IS_FOR, QUEUE_IS_FOR, method_not_allowed
from reviews.errors import ActionRefused, StaleEdit
from reviews.forms import ChecklistForm, DenyForm, EscalateForm, ReassignForm
from reviews.models import CheckResult, ReviewCase, case_reference
from reviews.selectors.cases import (
    HISTORY_MAX,
    HISTORY_SHOWN,
    QueueSearch,
    case_age,
    denial_reason_groups,
    review_case_checks_list,
    review_case_page_get,
    review_case_queue,
    review_case_queue_notices,
    review_case_queue_search,
    reviewers_list,
)
from reviews.services import CheckChange

WORK = "reviews.work_reviewcase"
SUPERVISE = "reviews.supervise_reviewcase"
VIEW_EVENTS = "reviews.view_caseevent"
VIEW_EMAILS = "reviews.view_notification"

State = ReviewCase.State


# --- queue filters --------------------------------------------------------------------


class StateFilter(admin.SimpleListFilter):
    """Open cases by default; every state; all. A search looks in every state."""

    title = "state"
    parameter_name = "state"
    OPEN = "open"
    ALL = "all"

    def __init__(self, request, params, model, model_admin):
        self.request = request
        super().__init__(request, params, model, model_admin)

    def lookups(self, request, model_admin):
        return [
            (self.OPEN, "Open (queued, in review, escalated)"),
            *State.choices,
            (self.ALL, "All"),
        ]

    def effective_value(self) -> str:
        value = self.value()
        if value in {self.OPEN, self.ALL, *State.values}:
            return value
        return self.ALL if self.request.GET.get("q", "").strip() else self.OPEN

    def queryset(self, request, queryset):
        value = self.effective_value()
        if value == self.OPEN:
            return queryset.filter(state__in=ReviewCase.OPEN_STATES)
        if value == self.ALL:
            return queryset
        return queryset.filter(state=value)

    def choices(self, changelist):
        current = self.effective_value()
        for lookup, title in self.lookup_choices:
            yield {
                "selected": current == lookup,
                "query_string": changelist.get_query_string(
                    {self.parameter_name: lookup}
                ),
                "display": title,
            }


class _ChoiceFilter(admin.SimpleListFilter):
    """A filter whose unknown values are ignored rather than an error page."""

    options: list[tuple[str, str]] = []

    def lookups(self, request, model_admin):
        return self.options

    def value(self):
        value = super().value()
        return value if value in dict(self.options) else None


class AssignedFilter(_ChoiceFilter):
    title = "assignee"
    parameter_name = "assigned"
    options = [("mine", "Mine"), ("unassigned", "Unassigned")]

    def queryset(self, request, queryset):
        if self.value() == "mine":
            return queryset.filter(assignee_id=request.user.pk)
        if self.value() == "unassigned":
            return queryset.filter(assignee__isnull=True)
        return queryset


class AffiliateFilter(_ChoiceFilter):
    title = "affiliate"
    parameter_name = "affiliate"
    options = [("1", "Affiliate"), ("0", "Not affiliate")]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(wants_affiliate=self.value() == "1")


class ResubmissionFilter(_ChoiceFilter):
    title = "request"
    parameter_name = "resubmission"
    options = [("1", "Resubmissions"), ("0", "First requests")]

    def queryset(self, request, queryset):
        # A resubmission follows an earlier decided case of the partner: the same
        # key requested again (attempt > 1) or a new key after a denial.
        if self.value() == "1":
            return queryset.filter(previous_case_id__isnull=False)
        if self.value() == "0":
            return queryset.filter(previous_case_id__isnull=True)
        return queryset


# --- the queue ------------------------------------------------------------------------


class QueueChangeList(ChangeList):
    """Pages by fetching one row more than shown: no COUNT of a huge table."""

    def get_results(self, request):
        per_page = self.list_per_page
        self.page_num = max(self.page_num, 1)
        offset = (self.page_num - 1) * per_page
        rows = list(self.queryset[offset : offset + per_page + 1])
        self.has_next_page = len(rows) > per_page
        self.has_previous_page = self.page_num > 1
        rows = rows[:per_page]
        self.result_list = rows
        self.first_shown = offset + 1 if rows else 0
        self.last_shown = offset + len(rows)
        # Lower bound only; templates never show it as a total.
        self.result_count = self.last_shown + (1 if self.has_next_page else 0)
        self.full_result_count = None
        self.show_full_result_count = False
        self.show_admin_actions = False
        self.can_show_all = False
        self.multi_page = self.has_next_page or self.has_previous_page
        self.paginator = None
        self.rows = queue_rows(rows)

    def page_query_string(self, page: int) -> str:
        return self.get_query_string({PAGE_VAR: page} if page > 1 else {})

    @property
    def next_page_url(self) -> str:
        return self.page_query_string(self.page_num + 1)

    @property
    def previous_page_url(self) -> str:
        return self.page_query_string(self.page_num - 1)


@admin.register(ReviewCase)
class ReviewCaseAdmin(admin.ModelAdmin):
    # The rows are rendered by the template from ``QueueChangeList.rows``: one
    # pass over plain values instead of the stock per-cell machinery.
    list_display = ("reference",)
    list_display_links = None
    list_filter = (StateFilter, AssignedFilter, AffiliateFilter, ResubmissionFilter)
    # The search box needs a field; get_search_results routes the term itself.
    search_fields = ("id",)
    search_help_text = (
        "Case reference (RC-000123), contact email (also former ones), key id, "
        "or part of the partner's name."
    )
    ordering = ("submitted_at", "id")
    sortable_by = ()
    list_per_page = 50
    show_full_result_count = False
    show_facets = ShowFacets.NEVER
    actions = None
    change_list_template = "admin/reviews/reviewcase/change_list.html"
    case_template = "admin/reviews/reviewcase/case.html"

    # --- permissions: view only through the stock machinery -----------------------

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Changes are the case page's actions, each checking its own permission.
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        raise PermissionDenied("Cases change only through the case page's actions.")

    def delete_model(self, request, obj):
        raise PermissionDenied("Cases are never deleted.")

    # --- the list -----------------------------------------------------------------

    def get_queryset(self, request):
        return review_case_queue()

    def get_changelist(self, request, **kwargs):
        return QueueChangeList

    def get_search_results(self, request, queryset, search_term):
        queryset, search = review_case_queue_search(queryset, search_term)
        request.queue_search = search
        return queryset, False

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied(QUEUE_IS_FOR)
        extra_context = {
            **(extra_context or {}),
            "title": "Review queue",
            "can_claim": request.user.has_perm(WORK),
            # The header's nav has what a reviewer needs; the table gets the width.
            "is_nav_sidebar_enabled": False,
        }
        response = super().changelist_view(request, extra_context)
        if hasattr(response, "context_data"):
            search: QueueSearch | None = getattr(request, "queue_search", None)
            response.context_data["queue_search"] = search
            changelist = response.context_data.get("cl")
            if changelist is not None and not changelist.rows:
                response.context_data["queue_empty"] = empty_queue_message(
                    changelist, can_claim=request.user.has_perm(WORK)
                )
            if changelist is not None:
                response.context_data["queue_notices"] = queue_notices(
                    request, changelist
                )
        return response

    # --- URLs -----------------------------------------------------------------------

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view
        return [
            path(
                "claim-next/",
                view(self.claim_next_view),
                name=f"{prefix}_claim_next",
            ),
            path(
                "<int:case_id>/change/",
                view(self.case_view),
                name=f"{prefix}_change",
            ),
            path(
                "<int:case_id>/<slug:action>/",
                view(self.case_action_view),
                name=f"{prefix}_action",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # Reached only for object ids that are not numbers: there is no such case.
        raise Http404("There is no such case.")

    def history_view(self, request, object_id, extra_context=None):
        raise Http404("There is no such case.")

    # --- the case page ----------------------------------------------------------------

    def case_view(self, request, case_id: int):
        if request.method not in ("GET", "HEAD"):
            # The stock change form is gone: nothing is ever saved by POSTing here.
            return method_not_allowed(
                request,
                ["GET"],
                text="Nothing is saved by sending a form to the case page itself: "
                "use the buttons on the page.",
                back_url=_case_url(case_id),
                back_label=f"Open {case_reference(case_id)}",
            )
        return self._render_case(request, case_id, draft=_take_draft(request, case_id))

    def _render_case(self, request, case_id: int, *, draft: Draft | None = None):
        """The case page; ``draft`` puts back what a refused form had entered."""
        if not self.has_view_permission(request):
            raise PermissionDenied(QUEUE_IS_FOR)
        user = request.user
        can_work = user.has_perm(WORK)
        can_supervise = user.has_perm(SUPERVISE)
        page = review_case_page_get(
            case_id=case_id,
            with_history=user.has_perm(VIEW_EVENTS),
            history_limit=(
                HISTORY_MAX if request.GET.get("history") == "all" else HISTORY_SHOWN
            ),
            with_notifications=user.has_perm(VIEW_EMAILS),
            with_denial_catalogue=can_work,
            with_reviewers=can_supervise,
        )
        if page is None:
            raise Http404(f"There is no case {case_reference(case_id)}.")
        case = page.case
        actions = available_actions(case, user)
        draft = draft or Draft(form="")
        checklist = ChecklistForm(page.checks, data=draft.data_for("checks"))
        escalate = EscalateForm(data=draft.data_for("escalate"))
        reassign = (
            ReassignForm(page.reviewers, data=draft.data_for("reassign"))
            if actions["reassign"]
            else None
        )
        deny = (
            DenyForm(page.reason_groups, data=draft.data_for("deny"))
            if actions["decide"]
            else None
        )
        for form in (checklist, escalate, reassign, deny):
            if form is not None and form.is_bound:
                form.is_valid()  # shows the errors beside the user's input
        context = {
            **self.admin_site.each_context(request),
            "is_nav_sidebar_enabled": False,
            "opts": self.opts,
            "title": f"{case.reference} · {case.account.name}",
            "page": page,
            "case": case,
            "actions": actions,
            "can_claim_next": can_work,
            "checklist": checklist,
            "checklist_rows": _checklist_rows(checklist, draft.attempted),
            "escalate_form": escalate,
            "escalate_open": draft.form == "escalate",
            "reassign_form": reassign,
            "deny_form": deny,
            "approve_blockers": page.blocking_checks,
            "integration": _integration(case.integration),
            "queue_url": reverse("admin:reviews_reviewcase_changelist"),
            "action_urls": {name: _action_url(case.pk, name) for name in CASE_ACTIONS},
            "claim_next_url": reverse("admin:reviews_reviewcase_claim_next"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.case_template, context)

    # --- actions ----------------------------------------------------------------------

    def claim_next_view(self, request):
        if not request.user.has_perm(WORK):
            raise PermissionDenied(CLAIM_IS_FOR)
        queue_url = reverse("admin:reviews_reviewcase_changelist")
        if request.method != "POST":
            return method_not_allowed(
                request,
                ["POST"],
                text="“Claim next case” is a button: it gives you the oldest queued "
                "case. Opening its address does nothing.",
                back_url=queue_url,
                back_label="Go to the review queue",
            )
        try:
            case = services.review_case_claim_next(actor=request.user)
        except ActionRefused as refusal:
            self.message_user(request, refusal.message, messages.ERROR)
            return HttpResponseRedirect(queue_url)
        if case is None:
            self.message_user(
                request,
                "The queue is empty: no case is waiting for review.",
                messages.INFO,
            )
            return HttpResponseRedirect(queue_url)
        self.message_user(
            request,
            f"You hold {case.reference} now. Work the checklist, then approve or deny.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(_case_url(case.pk))

    def case_action_view(self, request, case_id: int, action: str):
        if action == "history":
            return HttpResponseRedirect(_case_url(case_id) + "#history")
        handler_name = CASE_ACTIONS.get(action)
        if handler_name is None:
            raise Http404(f"There is no action “{action}” on cases.")
        needed = ACTION_PERMISSIONS[action]
        if not any(request.user.has_perm(perm) for perm in needed):
            raise PermissionDenied(ACTION_IS_FOR[action])
        if request.method != "POST":
            return method_not_allowed(
                request,
                ["POST"],
                text=f"“{ACTION_LABELS[action]}” is a button on the case page: "
                "opening its address does nothing.",
                back_url=_case_url(case_id),
                back_label=f"Open {case_reference(case_id)}",
            )
        return getattr(self, handler_name)(request, case_id)

    def _refused(
        self,
        request,
        case_id: int,
        message: str,
        *,
        form: str = "",
        attempted: dict[int, CheckChange] | None = None,
    ):
        """Say why, keep what the user typed in ``form``, and go back to the case.

        Post/redirect/get: reloading the page never sends the refused form again.
        The input comes back once, bound to its form with the errors beside it.
        """
        self.message_user(request, message, messages.ERROR)
        if form:
            _keep_draft(request, case_id, form, attempted=attempted)
        return HttpResponseRedirect(_case_url(case_id))

    def _done(self, request, case_id: int, message: str):
        self.message_user(request, message, messages.SUCCESS)
        return HttpResponseRedirect(_case_url(case_id))

    def action_claim(self, request, case_id: int):
        try:
            case = services.review_case_claim(actor=request.user, case_id=case_id)
        except ActionRefused as refusal:
            return self._refused(request, case_id, refusal.message)
        return self._done(
            request,
            case_id,
            f"You hold {case.reference} now. Work the checklist, then approve or deny.",
        )

    def action_release(self, request, case_id: int):
        try:
            case = services.review_case_release(
                actor=request.user,
                case_id=case_id,
                note=request.POST.get("note", "")[:500],
            )
        except ActionRefused as refusal:
            return self._refused(request, case_id, refusal.message)
        return self._done(request, case_id, f"{case.reference} is back in the queue.")

    def action_escalate(self, request, case_id: int):
        form = EscalateForm(request.POST)
        if not form.is_valid():
            return self._refused(request, case_id, _first_error(form), form="escalate")
        try:
            case = services.review_case_escalate(
                actor=request.user, case_id=case_id, note=form.cleaned_data["note"]
            )
        except ActionRefused as refusal:
            return self._refused(request, case_id, refusal.message, form="escalate")
        return self._done(
            request,
            case_id,
            f"{case.reference} is escalated: a senior reviewer will take it.",
        )

    def action_take(self, request, case_id: int):
        try:
            case = services.review_case_take(actor=request.user, case_id=case_id)
        except ActionRefused as refusal:
            return self._refused(request, case_id, refusal.message)
        return self._done(request, case_id, f"You hold {case.reference} now.")

    def action_reassign(self, request, case_id: int):
        form = ReassignForm(reviewers_list(), request.POST)
        if not form.is_valid():
            return self._refused(request, case_id, _first_error(form), form="reassign")
        assignee = form.cleaned_data["assignee"]
        try:
            case = services.review_case_reassign(
                actor=request.user, case_id=case_id, assignee=assignee
            )
        except ActionRefused as refusal:
            return self._refused(request, case_id, refusal.message)
        return self._done(
            request, case_id, f"{case.reference} is now held by {assignee}."
        )

    def action_checks(self, request, case_id: int):
        form = ChecklistForm(review_case_checks_list(case_id=case_id), request.POST)
        if not form.is_valid():
            return self._refused(
                request,
                case_id,
                "The checklist was not saved: " + _first_error(form),
                form="checks",
            )
        try:
            changed = services.review_case_record_checks(
                actor=request.user, case_id=case_id, changes=form.changes()
            )
        except StaleEdit as stale:
            # Show what is saved now, and beside it what this reviewer had entered.
            attempted = {change.criterion_id: change for change in form.changes()}
            return self._refused(
                request,
                case_id,
                _stale_message(request.user, case_id, attempted) or stale.message,
                attempted=attempted,
                form="stale",
            )
        except ActionRefused as refusal:
            return self._refused(request, case_id, refusal.message, form="checks")
        if changed:
            count = len(changed)
            message = f"Checklist saved: {count} change{'s' if count != 1 else ''}."
        else:
            message = "Checklist saved: nothing had changed."
        return self._done(request, case_id, message)

    def action_approve(self, request, case_id: int):
        try:
            case = services.review_case_approve(actor=request.user, case_id=case_id)
        except ActionRefused as refusal:
            return self._refused(request, case_id, refusal.message)
        return self._done(
            request,
            case_id,
            f"{case.reference} approved: key {case.key.platform_key_id} is active. "
            f"The approval email to {case.account.contact_email} is on its way.",
        )

    def action_deny(self, request, case_id: int):
        checks = review_case_checks_list(case_id=case_id)
        form = DenyForm(denial_reason_groups(checks), request.POST)
        if not form.is_valid():
            return self._refused(
                request,
                case_id,
                "The case was not denied: " + _first_error(form),
                form="deny",
            )
        try:
            case = services.review_case_deny(
                actor=request.user, case_id=case_id, reasons=form.choices()
            )
        except ActionRefused as refusal:
            return self._refused(
                request,
                case_id,
                "The case was not denied: " + refusal.message,
                form="deny",
            )
        count = len(form.choices())
        return self._done(
            request,
            case_id,
            f"{case.reference} denied with {count} reason{'s' if count != 1 else ''}. "
            f"The denial email to {case.account.contact_email} is on its way.",
        )


# action slug -> handler; the permissions a user needs to even try (any of them).
CASE_ACTIONS = {
    "claim": "action_claim",
    "release": "action_release",
    "escalate": "action_escalate",
    "take": "action_take",
    "reassign": "action_reassign",
    "checks": "action_checks",
    "approve": "action_approve",
    "deny": "action_deny",
}
ACTION_PERMISSIONS = {
    "claim": (WORK,),
    "release": (WORK, SUPERVISE),
    "escalate": (WORK,),
    "take": (SUPERVISE,),
    "reassign": (SUPERVISE,),
    "checks": (WORK,),
    "approve": (WORK,),
    "deny": (WORK,),
}
# Said on the 403 page to someone whose role lacks the action.
ACTION_IS_FOR = {
    "claim": "Claiming a case is for reviewers.",
    "release": "Releasing a case is for reviewers and senior reviewers.",
    "escalate": "Escalating a case is for reviewers.",
    "take": "Taking an escalated case is for senior reviewers.",
    "reassign": "Reassigning a case is for senior reviewers.",
    "checks": "Working the checklist is for reviewers.",
    "approve": "Approving a case is for reviewers.",
    "deny": "Denying a case is for reviewers.",
}
ACTION_LABELS = {
    "claim": "Claim this case",
    "release": "Release",
    "escalate": "Escalate",
    "take": "Take this case",
    "reassign": "Reassign",
    "checks": "Save checklist",
    "approve": "Approve",
    "deny": "Deny",
}


def available_actions(case: ReviewCase, user) -> dict[str, bool]:
    """What this user may do to this case in its current state (shown as buttons).

    The services decide again when the action is posted; this only keeps the
    page from offering what would be refused.
    """
    can_work = user.is_active and user.has_perm(WORK)
    can_supervise = user.is_active and user.has_perm(SUPERVISE)
    holds = case.state == State.IN_REVIEW and case.assignee_id == user.pk
    actions = {
        "claim": can_work and case.state == State.QUEUED,
        "release": case.state == State.IN_REVIEW
        and ((can_work and holds) or can_supervise),
        # A senior decides escalated cases; asking "a senior" again goes nowhere.
        # (The service still allows it: this only keeps the button away.)
        "escalate": can_work and holds and not can_supervise,
        "take": can_supervise and case.state == State.ESCALATED,
        "reassign": can_supervise and case.is_open,
        "checks": can_work and holds,
        "decide": can_work and holds,
    }
    actions["any"] = any(actions.values())
    return actions


def queue_rows(cases: list[ReviewCase]) -> list[dict]:
    """What the queue shows of each case, as plain values for the template."""
    prefix = reverse("admin:reviews_reviewcase_changelist")
    labels = dict(State.choices)
    now = timezone.now()
    rows = []
    for case in cases:
        assignee = case.assignee if case.assignee_id else None
        rows.append(
            {
                "url": f"{prefix}{case.pk}/change/",
                "reference": case.reference,
                "partner": case.account.name,
                "key_id": case.key.platform_key_id,
                "key_hint": case.key.hint,
                "state": case.state,
                "state_label": labels.get(case.state, case.state),
                "assignee": (assignee.full_name or assignee.email) if assignee else "",
                "attempt": case.attempt,
                "resubmission": case.previous_case_id is not None,
                "age": case_age(case.submitted_at, now),
                "submitted": timezone.localtime(case.submitted_at).strftime(
                    "%d %b %Y %H:%M"
                ),
                "affiliate": case.wants_affiliate,
            }
        )
    return rows


def queue_notices(request, changelist: QueueChangeList) -> dict | None:
    """ "You hold RC-…" for reviewers, "N escalated cases wait" for seniors.

    One query for both (``review_case_queue_notices``), and none while searching:
    a search may already spend a query on the key lookup, and the queue page
    stays within its budget of six (session, user, two for permissions, page,
    notices). Each notice is left out where the list itself already shows it.
    """
    if changelist.query.strip():
        return None
    user = request.user
    specs = {spec.parameter_name: spec for spec in changelist.filter_specs}
    want_held = user.has_perm(WORK) and specs["assigned"].value() != "mine"
    want_escalated = (
        user.has_perm(SUPERVISE) and specs["state"].effective_value() != State.ESCALATED
    )
    if not (want_held or want_escalated):
        return None
    found = review_case_queue_notices(
        holder_id=user.pk if want_held else None, escalated=want_escalated
    )
    if not (found.held or found.escalated):
        return None
    queue_url = reverse("admin:reviews_reviewcase_changelist")
    return {
        "held": [
            {"reference": case_reference(pk), "url": _case_url(pk)} for pk in found.held
        ],
        "more_held": found.more_held,
        "mine_url": f"{queue_url}?assigned=mine",
        "escalated": found.escalated,
        "escalated_age": case_age(found.escalated_since),
        "escalated_url": f"{queue_url}?state={State.ESCALATED}",
    }


def empty_queue_message(changelist: QueueChangeList, *, can_claim: bool) -> dict:
    """What an empty queue page says, fitted to the search and filters in use.

    ``{"text": ..., "links": [(label, url), ...]}``; the links lead to a page
    with cases (the first page, fewer filters, the whole queue).
    """
    specs = {spec.parameter_name: spec for spec in changelist.filter_specs}
    query = changelist.query.strip()
    state = specs["state"].effective_value()
    default_state = StateFilter.ALL if query else StateFilter.OPEN
    # The filters that narrow the list, as "title: choice" for the reader.
    active = {
        name: f"{spec.title}: {dict(spec.lookup_choices)[spec.value()]}"
        for name, spec in specs.items()
        if name != "state" and spec.value() is not None
    }
    if state != default_state:
        active = {
            "state": f"state: {dict(specs['state'].lookup_choices)[state]}",
            **active,
        }
    described = "; ".join(active.values())
    queue_url = reverse("admin:reviews_reviewcase_changelist")
    whole_queue = [("See the whole queue", queue_url)]
    clear = [
        (
            "Clear the filters",
            changelist.get_query_string(remove=[*specs, PAGE_VAR]),
        )
    ]

    if changelist.page_num > 1:
        return {
            "text": "No more cases: this page is past the end of the list.",
            "links": [("Back to the first page", changelist.page_query_string(1))],
        }
    if query:
        if active:
            return {
                "text": f"No cases match “{query}” with these filters ({described}).",
                "links": clear,
            }
        return {"text": f"No cases match “{query}” in any state.", "links": []}
    if not active:
        return {
            "text": "No open cases: nothing is waiting, the queue is empty.",
            "links": [("See decided cases", f"{queue_url}?state={StateFilter.ALL}")],
        }
    if set(active) == {"assigned"}:
        if specs["assigned"].value() == "mine":
            text = "You hold no cases."
            if can_claim:
                text += " Claim the next case to start."
            return {"text": text, "links": whole_queue}
        return {
            "text": "No open case is unassigned: every open case is held by a "
            "reviewer.",
            "links": whole_queue,
        }
    if set(active) == {"state"}:
        label = dict(State.choices).get(state, state).lower()
        text = {
            State.QUEUED: "Nothing is waiting: no case is queued.",
            State.IN_REVIEW: "No case is being reviewed right now.",
            State.ESCALATED: "No escalated cases: nothing waits for a senior reviewer.",
            StateFilter.ALL: "There are no cases yet.",
        }.get(state, f"No {label} cases.")
        return {"text": text, "links": whole_queue}
    return {"text": f"No cases match these filters ({described}).", "links": clear}


# --- what a refused form had entered, kept for one page view -----------------------

DRAFT_SESSION_KEY = "reviews.case_draft"


@dataclass
class Draft:
    """The input of a refused form on the case page, for the page after redirect.

    ``form`` is "checks", "escalate", "reassign" or "deny" (the form is bound to
    ``data`` again so the user's input and its errors show), or "stale": the
    checklist shows what is saved now with ``attempted`` beside each row.
    """

    form: str
    data: dict[str, list[str]] = field(default_factory=dict)
    attempted: dict[int, CheckChange] = field(default_factory=dict)

    def data_for(self, form: str) -> QueryDict | None:
        if form != self.form:
            return None
        data = QueryDict(mutable=True)
        for name, values in self.data.items():
            data.setlist(name, values)
        return data


def _keep_draft(
    request,
    case_id: int,
    form: str,
    *,
    attempted: dict[int, CheckChange] | None = None,
) -> None:
    request.session[DRAFT_SESSION_KEY] = {
        "case": case_id,
        "form": form,
        "data": {
            name: request.POST.getlist(name)
            for name in request.POST
            if name != "csrfmiddlewaretoken"
        },
        "attempted": [
            [change.criterion_id, change.result, change.note]
            for change in (attempted or {}).values()
        ],
    }


def _take_draft(request, case_id: int) -> Draft | None:
    """The draft kept for this case by the refused POST just before, once."""
    if DRAFT_SESSION_KEY not in request.session:
        return None
    kept = request.session.pop(DRAFT_SESSION_KEY)
    if not isinstance(kept, dict) or kept.get("case") != case_id:
        return None
    return Draft(
        form=kept.get("form", ""),
        data=kept.get("data") or {},
        attempted={
            criterion_id: CheckChange(
                criterion_id=criterion_id, result=result, note=note
            )
            for criterion_id, result, note in kept.get("attempted") or []
        },
    )


def _stale_message(user, case_id: int, attempted: dict[int, CheckChange]) -> str:
    """The stale-edit refusal when the other edit was the user's own (another tab
    or window); "" when someone else made it (the service's message names them)."""
    conflicts = [
        check
        for check in review_case_checks_list(case_id=case_id)
        if check.criterion_id in attempted
        and attempted[check.criterion_id].expected_version not in (None, check.version)
    ]
    if not conflicts or any(check.checked_by_id != user.pk for check in conflicts):
        return ""
    changed = ", ".join(
        f"“{check.criterion.title}” to {check.get_result_display().lower()}"
        for check in conflicts
    )
    return (
        f"You changed {changed} in another tab or window while you were editing "
        "here. Nothing was saved: the checklist shows what is saved now, with what "
        "you entered here beside it. Save again if yours should stand."
    )


def _case_url(case_id: int) -> str:
    return reverse("admin:reviews_reviewcase_change", args=[case_id])


def _action_url(case_id: int, action: str) -> str:
    return reverse("admin:reviews_reviewcase_action", args=[case_id, action])


def _first_error(form) -> str:
    for errors in form.errors.values():
        for error in errors:
            return str(error)
    return "check the form."


def _integration(data) -> dict:
    """The integration info the platform sent, as safe display values."""
    if not isinstance(data, dict):
        return {"app_name": "", "app_url": "", "endpoints": [], "other": {}}
    endpoints = data.get("endpoints") or []
    if not isinstance(endpoints, list):
        endpoints = [endpoints]
    app_url = str(data.get("app_url") or "")
    return {
        "app_name": str(data.get("app_name") or ""),
        "app_url": app_url,
        # Only http(s) links are clickable; anything else is shown as text.
        "app_url_is_link": app_url.lower().startswith(("https://", "http://")),
        "endpoints": [str(endpoint) for endpoint in endpoints],
        "other": {
            key: value
            for key, value in data.items()
            if key not in {"app_name", "app_url", "endpoints"}
        },
    }


def _checklist_rows(form: ChecklistForm, attempted: dict) -> list[dict]:
    labels = dict(CheckResult.Result.choices)
    rows = form.rows()
    for row in rows:
        change = attempted.get(row["check"].criterion_id)
        row["attempted"] = None
        if change is not None and (
            change.result != row["check"].result
            or (change.note or "").strip() != row["check"].note
        ):
            row["attempted"] = {
                "result": labels.get(change.result, change.result),
                "note": change.note,
            }
    return rows
