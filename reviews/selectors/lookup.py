"""Support lookup reads (issue 3).

One search box answers with the partner(s) and their cases, the frozen denial
reasons and the decision emails. Every branch is an indexed lookup and the page
costs the same number of queries whatever the number of cases or reasons:

1. which partners: one query (case pk; lower-cased address in
   ``DeveloperAccountEmail``; platform account id or key id), plus a second one
   for an organisation-name prefix when no id matched;
2. the partners with their addresses (2 queries);
3. their cases with key and decider, then reasons and emails (3 queries).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import CharField, Prefetch, Value

from accounts.models import DeveloperAccount, DeveloperAccountEmail
from reviews.models import (
    ApiKey,
    CaseDenialReason,
    Notification,
    ReviewCase,
    case_pk_from_reference,
    case_reference,
)

__all__ = [
    "LOOKUP_MAX_CASES",
    "LOOKUP_MAX_PARTNERS",
    "PartnerCases",
    "SupportLookup",
    "account_ids_matching",
    "support_lookup_get",
]

LOOKUP_MAX_PARTNERS = 20
LOOKUP_MAX_CASES = 100
MAX_QUERY_LENGTH = 254

MATCH_CASE = "case reference"
MATCH_EMAIL = "contact email"
MATCH_FORMER_EMAIL = "former contact email"
MATCH_ACCOUNT = "platform account id"
MATCH_KEY = "key id"
MATCH_NAME = "organisation name"


@dataclass
class PartnerCases:
    """One partner and its cases, newest first."""

    account: DeveloperAccount
    matched_by: str
    cases: list[ReviewCase] = field(default_factory=list)

    @property
    def former_emails(self) -> list[str]:
        current = self.account.contact_email.lower()
        return [row.email for row in self.account.lookup_emails if row.email != current]


@dataclass
class SupportLookup:
    query: str
    partners: list[PartnerCases] = field(default_factory=list)
    matched_case_id: int | None = None
    more_partners: bool = False
    more_cases: bool = False
    # Said to the user when nothing matched or the query was not understood.
    problem: str = ""

    @property
    def matched_case_reference(self) -> str:
        return case_reference(self.matched_case_id) if self.matched_case_id else ""


def _matching_accounts(query: str) -> tuple[list[tuple[int, str]], int | None, str]:
    """``([(account_id, matched_by), …], matched_case_id, problem)``."""
    case_pk = case_pk_from_reference(query)
    if case_pk is not None:
        account_id = (
            ReviewCase.objects.filter(pk=case_pk)
            .values_list("account_id", flat=True)
            .first()
        )
        if account_id is None:
            return [], None, f"There is no case {case_reference(case_pk)}."
        return [(account_id, MATCH_CASE)], case_pk, ""

    if "@" in query:
        rows = (
            DeveloperAccountEmail.objects.filter(email=query.lower())
            .order_by("account_id")
            .values_list("account_id", flat=True)[: LOOKUP_MAX_PARTNERS + 1]
        )
        return [(account_id, MATCH_EMAIL) for account_id in rows], None, ""

    # Platform ids first: both unique and indexed, one round trip.
    label = CharField()
    by_id = (
        DeveloperAccount.objects.filter(platform_account_id=query)
        .annotate(matched_by=Value(MATCH_ACCOUNT, output_field=label))
        .values_list("id", "matched_by")
        .union(
            ApiKey.objects.filter(platform_key_id=query)
            .annotate(matched_by=Value(MATCH_KEY, output_field=label))
            .values_list("account_id", "matched_by"),
            all=True,
        )
    )
    found = list(by_id)
    if found:
        return found, None, ""
    # Only then the organisation name (prefix, any case), capped.
    rows = (
        DeveloperAccount.objects.filter(name__istartswith=query)
        .order_by("name", "id")
        .values_list("id", flat=True)[: LOOKUP_MAX_PARTNERS + 1]
    )
    return [(account_id, MATCH_NAME) for account_id in rows], None, ""


def _cases_with_reasons_and_emails(queryset):
    return queryset.select_related("key", "decided_by", "assignee").prefetch_related(
        Prefetch(
            "denial_reasons",
            queryset=CaseDenialReason.objects.order_by("id"),
            to_attr="lookup_reasons",
        ),
        Prefetch(
            "notifications",
            # The bodies are large and shown on the notification page instead.
            queryset=Notification.objects.defer("body_text", "body_html").order_by(
                "id"
            ),
            to_attr="lookup_notifications",
        ),
    )


def account_ids_matching(query: str) -> list[int]:
    """Ids of the partners the lookup would show for ``query`` (indexed, capped)."""
    query = " ".join((query or "").split())[:MAX_QUERY_LENGTH]
    if not query:
        return []
    matches, _case_id, _problem = _matching_accounts(query)
    return list(dict.fromkeys(account_id for account_id, _how in matches))


def support_lookup_get(*, query: str) -> SupportLookup:
    """Partners matching ``query`` with their cases, reasons and decision emails.

    ``query`` is a case reference (RC-000123), a contact email (current or
    former, any case), a platform account id, a key id, or the start of an
    organisation name.
    """
    query = " ".join((query or "").split())[:MAX_QUERY_LENGTH]
    result = SupportLookup(query=query)
    if not query:
        return result
    matches, result.matched_case_id, result.problem = _matching_accounts(query)
    if result.problem:
        return result

    matched_by: dict[int, str] = {}
    for account_id, how in matches:
        matched_by.setdefault(account_id, how)
    if len(matched_by) > LOOKUP_MAX_PARTNERS:
        result.more_partners = True
        matched_by = dict(list(matched_by.items())[:LOOKUP_MAX_PARTNERS])
    if not matched_by:
        result.problem = (
            f"No partner or case matches “{query}”. Search by case reference "
            "(RC-000123), contact email, platform account id, key id or the start "
            "of the organisation name."
        )
        return result

    accounts = {
        account.pk: account
        for account in DeveloperAccount.objects.filter(
            pk__in=matched_by
        ).prefetch_related(
            Prefetch(
                "emails",
                queryset=DeveloperAccountEmail.objects.order_by("first_seen_at", "id"),
                to_attr="lookup_emails",
            )
        )
    }
    partners = {
        account_id: PartnerCases(
            account=accounts[account_id],
            matched_by=(
                MATCH_FORMER_EMAIL
                if how == MATCH_EMAIL
                and accounts[account_id].contact_email.lower() != query.lower()
                else how
            ),
        )
        for account_id, how in matched_by.items()
        if account_id in accounts
    }

    cases = list(
        _cases_with_reasons_and_emails(
            ReviewCase.objects.filter(account_id__in=partners)
        ).order_by("-submitted_at", "-id")[: LOOKUP_MAX_CASES + 1]
    )
    if len(cases) > LOOKUP_MAX_CASES:
        result.more_cases = True
        cases = cases[:LOOKUP_MAX_CASES]
        wanted = result.matched_case_id
        if wanted and wanted not in {case.pk for case in cases}:
            # The case asked for by reference is older than the page: show it too.
            cases += list(
                _cases_with_reasons_and_emails(ReviewCase.objects.filter(pk=wanted))
            )
    for case in cases:
        partners[case.account_id].cases.append(case)
    result.partners = list(partners.values())
    return result
