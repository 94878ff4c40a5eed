"""All writes of the reviews app. Import services from here."""

from .cases import (
    CheckChange,
    DenialChoice,
    review_case_approve,
    review_case_claim,
    review_case_claim_next,
    review_case_deny,
    review_case_escalate,
    review_case_open,
    review_case_reassign,
    review_case_record_check,
    review_case_record_checks,
    review_case_release,
    review_case_take,
    review_case_withdraw,
    review_cases_release_stale,
)

__all__ = [
    "CheckChange",
    "DenialChoice",
    "review_case_approve",
    "review_case_claim",
    "review_case_claim_next",
    "review_case_deny",
    "review_case_escalate",
    "review_case_open",
    "review_case_reassign",
    "review_case_record_check",
    "review_case_record_checks",
    "review_case_release",
    "review_case_take",
    "review_case_withdraw",
    "review_cases_release_stale",
]
