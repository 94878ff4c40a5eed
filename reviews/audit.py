"""One audit vocabulary: namespaced codes, actor, small payload, never a secret."""

from __future__ import annotations

from typing import Any

from .models import CaseEvent

CASE_OPENED = "reviews.case.opened"
CASE_RESUBMITTED = "reviews.case.resubmitted"
CASE_CLAIMED = "reviews.case.claimed"
CASE_RELEASED = "reviews.case.released"
CASE_LEASE_EXPIRED = "reviews.case.lease_expired"
CASE_ESCALATED = "reviews.case.escalated"
CASE_TAKEN = "reviews.case.taken"
CASE_REASSIGNED = "reviews.case.reassigned"
CASE_CHECK_RECORDED = "reviews.case.check_recorded"
CASE_APPROVED = "reviews.case.approved"
CASE_DENIED = "reviews.case.denied"
CASE_WITHDRAWN = "reviews.case.withdrawn"
KEY_REVOKED = "reviews.key.revoked"
KEY_RESUBMITTED = "reviews.key.resubmitted"
ACCOUNT_CREATED = "accounts.account.created"
ACCOUNT_UPDATED = "accounts.account.updated"
EMAIL_QUEUED = "reviews.email.queued"
EMAIL_SENT = "reviews.email.sent"
EMAIL_RETRYING = "reviews.email.retrying"
EMAIL_FAILED = "reviews.email.failed"
EMAIL_RESEND_REQUESTED = "reviews.email.resend_requested"
EMAIL_DELIVERY = "reviews.email.delivery_status"


def log_event(
    code: str,
    *,
    case=None,
    account=None,
    actor=None,
    actor_kind: str = CaseEvent.ActorKind.USER,
    from_state: str = "",
    to_state: str = "",
    payload: dict[str, Any] | None = None,
) -> CaseEvent:
    """Append one audit event (inside the caller's transaction)."""
    if actor is None and actor_kind == CaseEvent.ActorKind.USER:
        actor_kind = CaseEvent.ActorKind.SYSTEM
    if account is not None:
        account_id = account.pk
    else:
        account_id = case.account_id if case is not None else None
    return CaseEvent.objects.create(
        case=case,
        account_id=account_id,
        code=code,
        actor=actor,
        actor_kind=actor_kind,
        from_state=from_state,
        to_state=to_state,
        payload=payload or {},
    )
