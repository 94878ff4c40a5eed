"""Queue and case-page reads, written for a case table of millions of rows.

The queue never counts the table and never runs a query per row; every search
term is routed to one indexed lookup (case pk, lower-cased contact address, key
id, or organisation name through a trigram index on PostgreSQL). The case page
costs the same number of queries whatever the length of its history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Min, Q, QuerySet, Subquery
from django.utils import timezone

from accounts.models import DeveloperAccount, DeveloperAccountEmail, User
from reviews import audit
from reviews.models import (
    ApiKey,
    CaseDenialReason,
    CaseEvent,
    CheckResult,
    Criterion,
    DenialReason,
    Notification,
    ReviewCase,
    case_pk_from_reference,
)

__all__ = [
    "CasePage",
    "EventLine",
    "HISTORY_MAX",
    "HISTORY_SHOWN",
    "QueueNotices",
    "QueueSearch",
    "case_age",
    "denial_reason_groups",
    "review_case_checks_list",
    "review_case_history",
    "review_case_page_get",
    "review_case_queue",
    "review_case_queue_notices",
    "review_case_queue_search",
    "reviewers_list",
]

WORK = "reviews.work_reviewcase"
SUPERVISE = "reviews.supervise_reviewcase"

# Columns the queue shows; nothing else is read (the integration JSON stays put).
QUEUE_COLUMNS = (
    "id",
    "state",
    "attempt",
    "submitted_at",
    "wants_affiliate",
    "previous_case_id",
    "account__name",
    "key__platform_key_id",
    "key__last4",
    "assignee__full_name",
    "assignee__email",
)
# The queue's "You hold …" notice names this many cases at most.
HELD_SHOWN = 5
# A partner-name search looks at this many matching partners at most.
NAME_SEARCH_MAX_PARTNERS = 100
NAME_SEARCH_MIN_LENGTH = 3
OTHER_CASES_SHOWN = 20
# The case page shows the latest events; "show all" lifts this to HISTORY_MAX.
HISTORY_SHOWN = 50
HISTORY_MAX = 2000
MAX_TERM_LENGTH = 254
_DIGITS = re.compile(r"^\s*#?(\d{1,18})\s*$")


# --- the queue ------------------------------------------------------------------------


def review_case_queue() -> QuerySet[ReviewCase]:
    """All cases, oldest first, with only the columns the queue shows."""
    return (
        ReviewCase.objects.select_related("account", "key", "assignee")
        .only(*QUEUE_COLUMNS)
        .order_by("submitted_at", "id")
    )


@dataclass(frozen=True)
class QueueNotices:
    """What the queue tells a user above the list: the cases they hold (oldest
    first, at most ``HELD_SHOWN``) and how many escalated cases wait."""

    held: list[int] = field(default_factory=list)
    more_held: bool = False
    escalated: int = 0
    escalated_since: datetime | None = None


def review_case_queue_notices(
    *, holder_id: int | None = None, escalated: bool = False
) -> QueueNotices:
    """The cases ``holder_id`` holds and the escalated count, in one query.

    Both are small indexed subsets of the case table: the holder's open cases
    (``case_assignee_idx``) and the escalated ones (``case_state_submitted_idx``);
    asked together they are one ``UNION ALL`` so the queue keeps its query budget.
    """
    parts = []
    if holder_id is not None:
        held = (
            ReviewCase.objects.filter(
                assignee_id=holder_id, state=ReviewCase.State.IN_REVIEW
            )
            .order_by("submitted_at", "id")
            .values("pk")[: HELD_SHOWN + 1]
        )
        parts.append(
            ReviewCase.objects.filter(pk__in=held)
            .order_by()
            .values_list("state", "pk", "submitted_at")
        )
    if escalated:
        parts.append(
            ReviewCase.objects.filter(state=ReviewCase.State.ESCALATED)
            .order_by()
            .values("state")
            .annotate(count=Count("pk"), since=Min("submitted_at"))
            .values_list("state", "count", "since")
        )
    if not parts:
        return QueueNotices()
    query = parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
    held_rows: list[tuple[datetime, int]] = []
    waiting, since = 0, None
    for state, value, when in query:
        if state == ReviewCase.State.ESCALATED:
            waiting, since = value, when
        else:
            held_rows.append((when, value))
    held_rows.sort()
    return QueueNotices(
        held=[pk for _when, pk in held_rows[:HELD_SHOWN]],
        more_held=len(held_rows) > HELD_SHOWN,
        escalated=waiting,
        escalated_since=since,
    )


@dataclass(frozen=True)
class QueueSearch:
    """How a search term was understood, said back to the reviewer."""

    term: str
    kind: str  # "reference" | "email" | "key" | "name" | "" (nothing to search)
    problem: str = ""

    @property
    def label(self) -> str:
        return {
            "reference": "case reference",
            "email": "contact email (current or former)",
            "key": "key id",
            "name": "partner name or account id (up to "
            f"{NAME_SEARCH_MAX_PARTNERS} matching partners)",
        }.get(self.kind, "")


def review_case_queue_search(
    queryset: QuerySet[ReviewCase], term: str
) -> tuple[QuerySet[ReviewCase], QueueSearch]:
    """Narrow ``queryset`` to the cases matching ``term``, by one indexed lookup.

    - ``RC-000123`` / ``rc123`` / ``#123``: that case (primary key);
    - anything with ``@``: the partners who ever used that contact address
      (``DeveloperAccountEmail``, exact, lower-cased);
    - otherwise an exact platform key id (unique index) if one exists (one small
      query), else partners whose platform account id equals the term or whose
      name contains it (trigram index on PostgreSQL), at most
      ``NAME_SEARCH_MAX_PARTNERS`` of them.
    """
    term = " ".join((term or "").split())[:MAX_TERM_LENGTH]
    if not term:
        return queryset, QueueSearch(term, "")
    case_pk = case_pk_from_reference(term)
    if case_pk is None and term.startswith("#"):
        digits = _DIGITS.match(term)
        case_pk = int(digits.group(1)) if digits else None
    if case_pk is not None:
        return queryset.filter(pk=case_pk), QueueSearch(term, "reference")

    if "@" in term:
        accounts = DeveloperAccountEmail.objects.filter(email=term.lower()).values(
            "account_id"
        )
        return (
            queryset.filter(account_id__in=Subquery(accounts)),
            QueueSearch(term, "email"),
        )

    key_ids = list(
        ApiKey.objects.filter(platform_key_id=term).values_list("pk", flat=True)[:1]
    )
    if key_ids:
        return queryset.filter(key_id=key_ids[0]), QueueSearch(term, "key")

    if _DIGITS.match(term):
        # A bare number that is no key id: read it as a case number.
        return queryset.filter(pk=int(term)), QueueSearch(term, "reference")

    by_id = Q(platform_account_id=term)
    problem = ""
    if len(term) >= NAME_SEARCH_MIN_LENGTH:
        by_id |= Q(name__icontains=term)
    else:
        problem = (
            f"Type at least {NAME_SEARCH_MIN_LENGTH} letters to search partner "
            "names; shorter terms match only an exact account id."
        )
    accounts = DeveloperAccount.objects.filter(by_id).values("pk")[
        :NAME_SEARCH_MAX_PARTNERS
    ]
    return (
        queryset.filter(account_id__in=Subquery(accounts)),
        QueueSearch(term, "name", problem),
    )


def case_age(since: datetime | None, now: datetime | None = None) -> str:
    """Short age for the queue: ``"12 min"``, ``"5 h"``, ``"3 d"``."""
    if since is None:
        return ""
    seconds = max(0, int(((now or timezone.now()) - since).total_seconds()))
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h"
    return f"{hours // 24} d"


# --- the case page --------------------------------------------------------------------


@dataclass
class EventLine:
    """One audit event as people read it."""

    event: CaseEvent
    actor: str
    text: str
    detail: str = ""

    @property
    def shows_case_states(self) -> bool:
        """Key events carry key statuses in from/to; those are told in the text."""
        return not self.event.code.startswith("reviews.key.") and bool(
            self.event.to_state
        )

    @property
    def from_label(self) -> str:
        return _STATE_LABELS.get(self.event.from_state, self.event.from_state)

    @property
    def to_label(self) -> str:
        return _STATE_LABELS.get(self.event.to_state, self.event.to_state)


@dataclass
class CasePage:
    """Everything the case page shows, read in a fixed number of queries."""

    case: ReviewCase
    checks: list[CheckResult]
    other_cases: list[ReviewCase]
    more_other_cases: bool
    denial_reasons: list[CaseDenialReason]
    history: list[EventLine] | None
    history_truncated: bool
    notifications: list[Notification] | None
    # Filled only for someone who can deny / reassign right now.
    reason_groups: list[tuple[Criterion, list[DenialReason]]] = field(
        default_factory=list
    )
    reviewers: list[User] = field(default_factory=list)

    @property
    def blocking_checks(self) -> list[CheckResult]:
        passing = {CheckResult.Result.PASS, CheckResult.Result.NOT_APPLICABLE}
        return [check for check in self.checks if check.result not in passing]

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [
            check for check in self.checks if check.result == CheckResult.Result.FAIL
        ]

    @property
    def previous_case(self) -> ReviewCase | None:
        for other in self.other_cases:
            if other.pk == self.case.previous_case_id:
                return other
        return None


def review_case_page_get(
    *,
    case_id: int,
    with_history: bool = True,
    history_limit: int = HISTORY_SHOWN,
    with_notifications: bool = True,
    with_denial_catalogue: bool = False,
    with_reviewers: bool = False,
) -> CasePage | None:
    """The case with its partner, key, checklist, the partner's other cases with
    their frozen denial reasons, its history and its emails; None if no such case.

    Queries: case, checks, other cases, denial reasons, history, emails, plus the
    active denial catalogue and the reviewer list when asked for, plus at most one
    for people named in the history who appear nowhere else on the page.
    """
    case = (
        ReviewCase.objects.select_related("account", "key", "assignee", "decided_by")
        .filter(pk=case_id)
        .first()
    )
    if case is None:
        return None
    checks = review_case_checks_list(case_id=case.pk)
    other_cases = list(
        ReviewCase.objects.filter(account_id=case.account_id)
        .exclude(pk=case.pk)
        .select_related("key", "decided_by")
        .defer("integration", "escalation_note")
        .order_by("-submitted_at", "-id")[: OTHER_CASES_SHOWN + 1]
    )
    more_other_cases = len(other_cases) > OTHER_CASES_SHOWN
    other_cases = other_cases[:OTHER_CASES_SHOWN]
    reasons_by_case: dict[int, list[CaseDenialReason]] = {}
    for reason in (
        CaseDenialReason.objects.filter(
            case_id__in=[case.pk, *(other.pk for other in other_cases)]
        )
        .select_related("reason")
        .order_by("id")
    ):
        reasons_by_case.setdefault(reason.case_id, []).append(reason)
    for other in other_cases:
        other.page_denial_reasons = reasons_by_case.get(other.pk, [])
    denial_reasons = reasons_by_case.get(case.pk, [])

    reviewers = reviewers_list() if with_reviewers else []

    history = None
    history_truncated = False
    if with_history:
        events = list(
            CaseEvent.objects.filter(case_id=case.pk)
            .select_related("actor")
            .order_by("-created_at", "-id")[: history_limit + 1]
        )
        history_truncated = len(events) > history_limit
        events = events[:history_limit]
        events.reverse()
        known_people = [
            case.assignee,
            case.decided_by,
            *(check.checked_by for check in checks),
            *(event.actor for event in events),
            *reviewers,
        ]
        history = review_case_history(
            events,
            checks=checks,
            denial_reasons=denial_reasons,
            known_people=known_people,
        )

    notifications = None
    if with_notifications:
        notifications = list(
            Notification.objects.filter(case_id=case.pk)
            .defer("body_html")
            .order_by("created_at", "id")
        )

    reason_groups = denial_reason_groups(checks) if with_denial_catalogue else []

    return CasePage(
        case=case,
        checks=checks,
        other_cases=other_cases,
        more_other_cases=more_other_cases,
        denial_reasons=denial_reasons,
        history=history,
        history_truncated=history_truncated,
        notifications=notifications,
        reason_groups=reason_groups,
        reviewers=reviewers,
    )


def review_case_checks_list(*, case_id: int) -> list[CheckResult]:
    """The case's checklist in catalogue order, with criteria and who checked."""
    return list(
        CheckResult.objects.filter(case_id=case_id)
        .select_related("criterion", "checked_by")
        .order_by("criterion__order", "criterion_id")
    )


def denial_reason_groups(
    checks: list[CheckResult],
) -> list[tuple[Criterion, list[DenialReason]]]:
    """Active denial reasons of the criteria failed in ``checks``, by criterion.

    One query, none when nothing failed.
    """
    failed = {
        check.criterion_id: check.criterion
        for check in checks
        if check.result == CheckResult.Result.FAIL
    }
    if not failed:
        return []
    grouped: dict[int, list[DenialReason]] = {}
    for reason in DenialReason.objects.filter(
        is_active=True, criterion_id__in=failed
    ).order_by("order", "id"):
        grouped.setdefault(reason.criterion_id, []).append(reason)
    return [
        (criterion, grouped.get(criterion_id, []))
        for criterion_id, criterion in failed.items()
    ]


def reviewers_list() -> list[User]:
    """Active users who may work cases (for a senior's "reassign to")."""
    return list(
        User.objects.filter(is_active=True)
        .filter(
            Q(groups__permissions__codename="work_reviewcase")
            | Q(user_permissions__codename="work_reviewcase")
            | Q(is_superuser=True)
        )
        .distinct()
        .only("id", "full_name", "email")
        .order_by("full_name", "email")
    )


# --- history as people read it ------------------------------------------------------

_RESULT_LABELS = dict(CheckResult.Result.choices)
_STATE_LABELS = dict(ReviewCase.State.choices)
_KIND_LABELS = dict(Notification.Kind.choices)
_KEY_STATUS_LABELS = dict(ApiKey.Status.choices)


def review_case_history(
    events: list[CaseEvent],
    *,
    checks: list[CheckResult],
    denial_reasons: list[CaseDenialReason],
    known_people: list[User | None],
) -> list[EventLine]:
    """Readable lines for ``events``; at most one query, for unknown people."""
    people = {person.pk: str(person) for person in known_people if person is not None}
    wanted = set()
    for event in events:
        for name in ("former_assignee", "assignee"):
            value = event.payload.get(name) if isinstance(event.payload, dict) else None
            if isinstance(value, int) and value not in people:
                wanted.add(value)
    if wanted:
        people.update(
            (person.pk, str(person))
            for person in User.objects.filter(pk__in=wanted).only(
                "id", "full_name", "email"
            )
        )
    criteria = {check.criterion.code: check.criterion.title for check in checks}
    reason_titles = {reason.reason.code: reason.title for reason in denial_reasons}
    return [
        _describe(event, people=people, criteria=criteria, reasons=reason_titles)
        for event in events
    ]


def _person(people: dict[int, str], pk) -> str:
    if pk is None:
        return "nobody"
    return people.get(pk, f"user #{pk}")


def _describe(
    event: CaseEvent,
    *,
    people: dict[int, str],
    criteria: dict[str, str],
    reasons: dict[str, str],
) -> EventLine:
    payload = event.payload if isinstance(event.payload, dict) else {}
    code = event.code
    detail = ""
    if code == audit.CASE_OPENED:
        text = f"Request received for key {payload.get('key', '')}"
    elif code == audit.CASE_RESUBMITTED:
        previous = payload.get("previous_case") or "an earlier case"
        text = (
            f"Resubmitted after {previous} (attempt {payload.get('attempt', '?')}), "
            f"key {payload.get('key', '')}"
        )
    elif code == audit.CASE_CLAIMED:
        text = "Claimed the case"
    elif code == audit.CASE_RELEASED:
        former = payload.get("former_assignee")
        text = "Released the case to the queue"
        if former is not None and former != event.actor_id:
            text += f" (it was held by {_person(people, former)})"
        detail = payload.get("note") or ""
    elif code == audit.CASE_LEASE_EXPIRED:
        text = (
            "Claim expired after inactivity; back in the queue (it was held by "
            f"{_person(people, payload.get('former_assignee'))})"
        )
    elif code == audit.CASE_ESCALATED:
        text = "Escalated to the senior reviewers"
        detail = payload.get("note") or ""
    elif code == audit.CASE_TAKEN:
        text = "Took the escalated case"
    elif code == audit.CASE_REASSIGNED:
        text = (
            f"Reassigned from {_person(people, payload.get('former_assignee'))} "
            f"to {_person(people, payload.get('assignee'))}"
        )
    elif code == audit.CASE_CHECK_RECORDED:
        title = criteria.get(payload.get("criterion"), payload.get("criterion", "?"))
        before = _RESULT_LABELS.get(payload.get("from"), payload.get("from"))
        after = _RESULT_LABELS.get(payload.get("to"), payload.get("to"))
        text = f"Checked “{title}”: {before} → {after}"
        detail = payload.get("note") or ""
    elif code == audit.CASE_APPROVED:
        text = "Approved; the key is active"
    elif code == audit.CASE_DENIED:
        codes = payload.get("reasons") or []
        titles = [reasons.get(reason_code, reason_code) for reason_code in codes]
        text = "Denied"
        detail = "Reasons: " + "; ".join(titles) if titles else ""
    elif code.startswith("reviews.key."):
        verb = code.rsplit(".", 1)[-1].replace("_", " ")
        text = f"Key {payload.get('key', '')} {verb}".strip()
        if event.from_state or event.to_state:
            before = _KEY_STATUS_LABELS.get(event.from_state, event.from_state)
            after = _KEY_STATUS_LABELS.get(event.to_state, event.to_state)
            text += f": {before} → {after}"
        detail = payload.get("note") or ""
    elif code == audit.CASE_WITHDRAWN:
        text = "Withdrawn by the platform (the key was deleted)"
        detail = payload.get("note") or ""
    elif code.startswith("reviews.email."):
        kind = _KIND_LABELS.get(payload.get("kind"), payload.get("kind") or "")
        what = {
            audit.EMAIL_QUEUED: "email queued",
            audit.EMAIL_SENT: "email sent",
            audit.EMAIL_RETRYING: "email sending failed; will retry",
            audit.EMAIL_FAILED: "email could not be sent",
            audit.EMAIL_RESEND_REQUESTED: "email resend requested",
            audit.EMAIL_DELIVERY: "email delivery status",
        }.get(code, code.rsplit(".", 1)[-1].replace("_", " "))
        text = f"{kind} {what}".strip().capitalize()
        extras = {
            name: payload[name]
            for name in (
                "to",
                "status",
                "delivery_status",
                "event",
                "detail",
                "error",
                "attempt",
            )
            if payload.get(name) not in (None, "")
        }
        detail = ", ".join(f"{name}: {value}" for name, value in extras.items())
    else:
        text = code
        detail = ", ".join(
            f"{name}: {value}"
            for name, value in payload.items()
            if isinstance(value, str | int | float) and name not in {"secret"}
        )
    return EventLine(event=event, actor=event.actor_label, text=text, detail=detail)
