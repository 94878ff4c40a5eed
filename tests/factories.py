"""Factories for tests and benchmarks: one place that knows how to build things."""

from __future__ import annotations

import itertools

from django.contrib.auth.models import Group

from accounts.models import DeveloperAccount, User
from reviews import services
from reviews.models import ApiKey, ReviewCase

_seq = itertools.count(1)


def make_user(role: str | None, email: str, full_name: str = "") -> User:
    user = User.objects.create_user(
        email=email, password="pw", full_name=full_name, is_staff=True
    )
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


def make_account(*, affiliate: bool = False, **fields) -> DeveloperAccount:
    n = next(_seq)
    defaults = {
        "platform_account_id": f"acct_t{n}",
        "name": f"Partner {n} Ltd",
        "contact_email": f"dev{n}@partner{n}.example",
        "contact_name": f"Dev {n}",
        "help_desk_account_id": f"HD-{n}",
        "wants_affiliate": affiliate,
        "tastemakers_account_id": f"TM-{n}" if affiliate else "",
        "affiliate_partner_id": str(5000000 + n) if affiliate else "",
    }
    defaults.update(fields)
    return DeveloperAccount.objects.create(**defaults)


def make_case(
    *,
    account: DeveloperAccount | None = None,
    affiliate: bool = False,
    key: ApiKey | None = None,
    previous_case: ReviewCase | None = None,
    attempt: int = 1,
    **case_fields,
) -> ReviewCase:
    """A queued case with its unchecked checklist, opened by the real service."""
    account = account or make_account(affiliate=affiliate)
    if key is None:
        n = next(_seq)
        key = ApiKey.objects.create(
            platform_key_id=f"pk_t{n}", account=account, name="Production", last4="ab12"
        )
    return services.review_case_open(
        key=key,
        account=account,
        integration={"app_name": f"{account.name} app", "endpoints": ["recipe"]},
        previous_case=previous_case,
        attempt=attempt,
        **case_fields,
    )


def pass_all_checks(case: ReviewCase, actor: User) -> None:
    services.review_case_record_checks(
        actor=actor,
        case_id=case.pk,
        changes=[
            services.CheckChange(check.criterion_id, "pass")
            for check in case.checks.all()
        ],
    )


def approve_case(case: ReviewCase, reviewer: User) -> ReviewCase:
    """Claim, pass every check and approve: writes the approval Notification."""
    services.review_case_claim(actor=reviewer, case_id=case.pk)
    pass_all_checks(case, reviewer)
    return services.review_case_approve(actor=reviewer, case_id=case.pk)


def deny_case(case: ReviewCase, reviewer: User, detail: str = "") -> ReviewCase:
    """Claim, fail the first check and deny with one of its reasons."""
    from reviews.models import DenialReason

    services.review_case_claim(actor=reviewer, case_id=case.pk)
    check = case.checks.order_by("criterion__order").first()
    services.review_case_record_check(
        actor=reviewer, case_id=case.pk, criterion_id=check.criterion_id, result="fail"
    )
    reason = DenialReason.objects.filter(
        criterion_id=check.criterion_id, is_active=True
    ).first()
    return services.review_case_deny(
        actor=reviewer,
        case_id=case.pk,
        reasons=[services.DenialChoice(reason.pk, detail)],
    )
