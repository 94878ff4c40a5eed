"""Services that change review cases. Every write of a case goes through here.

Each service: opens a transaction, locks the case row, checks the actor's
permission and the rules of DESIGN §3, runs the FSM transition, saves with
``update_fields``, writes a ``CaseEvent`` and schedules side effects after commit.
A refusal raises ``ActionRefused`` (or a subclass) with a message for the reviewer.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from accounts.models import DeveloperAccount, User
from reviews import audit
from reviews.errors import ActionRefused, PermissionRefused, StaleEdit
from reviews.models import (
    ApiKey,
    CaseDenialReason,
    CaseEvent,
    CheckResult,
    Criterion,
    DenialReason,
    Notification,
    ReviewCase,
    case_reference,
)
from reviews.side_effects import enqueue_after_commit

WORK = "reviews.work_reviewcase"
SUPERVISE = "reviews.supervise_reviewcase"

PASSING = {CheckResult.Result.PASS, CheckResult.Result.NOT_APPLICABLE}


@dataclass(frozen=True)
class CheckChange:
    """One checklist edit. ``expected_version`` is the version the editor saw."""

    criterion_id: int
    result: str
    note: str = ""
    expected_version: int | None = None


@dataclass(frozen=True)
class DenialChoice:
    reason_id: int
    detail: str = ""


# --- helpers ------------------------------------------------------------------------


_ROLE_FOR = {WORK: "Reviewer", SUPERVISE: "Senior reviewer"}


def _require_perm(actor: User, perm: str, doing: str) -> None:
    if not (actor and actor.is_active):
        raise PermissionRefused(
            f"Your account is inactive, so you cannot {doing}. "
            "Ask an admin to reactivate it."
        )
    if not actor.has_perm(perm):
        raise PermissionRefused(
            f"Your role does not allow you to {doing}. Ask an admin for the "
            f"{_ROLE_FOR.get(perm, 'right')} role if your work needs it."
        )


def _lock_case(case_id: int) -> ReviewCase:
    try:
        return ReviewCase.objects.select_for_update().get(pk=case_id)
    except ReviewCase.DoesNotExist:
        raise ActionRefused(
            f"Case {case_reference(case_id)} does not exist; check the reference."
        ) from None


def _holder_text(case: ReviewCase) -> str:
    if case.assignee_id is None:
        return "nobody holds it"
    holder = User.objects.filter(pk=case.assignee_id).first()
    return f"{holder} holds it" if holder else "someone else holds it"


def _state_refusal(case: ReviewCase, doing: str, needed: str) -> ActionRefused:
    return ActionRefused(
        f"{case.reference} is {case.get_state_display().lower()}; "
        f"you can only {doing} a case that is {needed}.",
        code="state",
    )


def _require_assignee(case: ReviewCase, actor: User, doing: str) -> None:
    """Only the case's current assignee works it; a former one is told why not."""
    if case.state == ReviewCase.State.IN_REVIEW and case.assignee_id == actor.pk:
        return
    if case.state == ReviewCase.State.IN_REVIEW:
        raise ActionRefused(
            f"You do not hold {case.reference} ({_holder_text(case)}), so you cannot "
            f"{doing} it. Ask a senior reviewer to reassign it if it should be yours.",
            code="not_assignee",
        )
    if case.state == ReviewCase.State.QUEUED:
        raise ActionRefused(
            _back_in_queue_text(case, actor, doing), code="not_assignee"
        )
    raise _state_refusal(case, doing, "in review")


def _back_in_queue_text(case: ReviewCase, actor: User, doing: str) -> str:
    """Why ``actor`` cannot work a queued case: never claimed, released or lapsed."""
    put_back = (
        case.events.filter(code__in=[audit.CASE_RELEASED, audit.CASE_LEASE_EXPIRED])
        .order_by("-id")
        .first()
    )
    again = f"Claim it again from the queue to {doing} it."
    if put_back and put_back.payload.get("former_assignee") == actor.pk:
        if put_back.code == audit.CASE_LEASE_EXPIRED:
            minutes = int(settings.REVIEW_CLAIM_LEASE.total_seconds() // 60)
            return (
                f"You no longer hold {case.reference}: your claim lapsed after "
                f"{minutes} minutes idle and the case went back to the queue. {again}"
            )
        by = "you" if put_back.actor_id == actor.pk else str(put_back.actor_label)
        return (
            f"You no longer hold {case.reference}: {by} released it back to the "
            f"queue. {again}"
        )
    return (
        f"Nobody holds {case.reference}: it is waiting in the queue. "
        f"Claim it first to {doing} it."
    )


def _run(transition, **kwargs) -> None:
    """Run an FSM transition, turning ``TransitionNotAllowed`` into a clear refusal."""
    try:
        transition(**kwargs)
    except TransitionNotAllowed as exc:
        raise ActionRefused(
            f"{transition.__self__} cannot {transition.__name__} in its current "
            f"state ({exc}).",
            code="state",
        ) from exc


_CASE_FIELDS = [
    "state",
    "assignee",
    "claimed_at",
    "last_activity_at",
    "state_changed_at",
]


def _touch(case: ReviewCase) -> None:
    """Renew the claim's lease: the assignee is working on it."""
    case.last_activity_at = timezone.now()
    ReviewCase.objects.filter(pk=case.pk).update(last_activity_at=case.last_activity_at)


# --- opening ------------------------------------------------------------------------


def review_case_open(
    *,
    key: ApiKey,
    account: DeveloperAccount,
    integration: dict,
    previous_case: ReviewCase | None,
    attempt: int,
    submitted_at: datetime | None = None,
) -> ReviewCase:
    """Open a queued case for ``key`` with one unchecked row per applicable criterion.

    Called by the platform-event ingest inside its transaction; the key must
    already be pending approval. Every signed intake opens a case, so on
    PostgreSQL the case, its checks and its audit row are one statement.
    """
    case = ReviewCase(
        key=key,
        account=account,
        attempt=attempt,
        previous_case=previous_case,
        wants_affiliate=account.wants_affiliate,
        integration=integration or {},
        submitted_at=submitted_at or timezone.now(),
    )
    event = CaseEvent(
        account_id=account.pk,
        code=audit.CASE_RESUBMITTED if previous_case else audit.CASE_OPENED,
        actor_kind=CaseEvent.ActorKind.PLATFORM,
        to_state=case.state,
        payload={
            "key": key.platform_key_id,
            "attempt": attempt,
            "previous_case": previous_case.reference if previous_case else None,
        },
    )
    if connection.vendor == "postgresql":
        _open_in_one_statement(case, event)
        return case
    case.save(force_insert=True)
    checks_sql, checks_params = _checks_insert(case.wants_affiliate, "%s", "")
    with connection.cursor() as cursor:
        cursor.execute(checks_sql, [case.pk, *checks_params])
    audit.log_event(
        event.code,
        case=case,
        actor_kind=event.actor_kind,
        to_state=event.to_state,
        payload=event.payload,
    )
    return case


def _insert_columns(obj) -> tuple[list[str], list]:
    """Quoted columns and database values of a new, unsaved model instance, as the
    ORM's INSERT would send them (defaults applied; the primary key left out)."""
    db = connections[DEFAULT_DB_ALIAS]  # once, not through the proxy per field
    fields, columns = _insert_fields(type(obj), db.vendor)
    return columns, [
        field.get_db_prep_save(field.pre_save(obj, True), db) for field in fields
    ]


@functools.cache
def _insert_fields(model, vendor: str) -> tuple[list, list[str]]:
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    return fields, [connection.ops.quote_name(field.column) for field in fields]


def _checks_insert(affiliate: bool, case_id_sql: str, source: str) -> tuple[str, list]:
    """``INSERT … SELECT`` of one unchecked row per active criterion that applies,
    in criterion order: no criteria round trip, no cache to go stale. The row's
    values are the model's defaults; ``case_id_sql`` (and ``source``, extra FROM
    items) say where the case id comes from. Parameters follow ``case_id_sql``'s.
    """
    blank = CheckResult()
    qn = connection.ops.quote_name
    criterion = qn(Criterion._meta.db_table)
    where = f"{criterion}.{qn('is_active')} = %s"
    params: list = [blank.result, blank.note, blank.version, True]
    if not affiliate:
        where += f" AND {criterion}.{qn('applies_to')} = %s"
        params.append(Criterion.AppliesTo.ALL)
    # Identifiers come from model metadata; every value is a bound parameter.
    sql = f"""
        INSERT INTO {qn(CheckResult._meta.db_table)}
            ({qn("case_id")}, {qn("criterion_id")}, {qn("result")}, {qn("note")},
             {qn("checked_by_id")}, {qn("checked_at")}, {qn("version")})
        SELECT {case_id_sql}, {criterion}.{qn("id")}, %s, %s, NULL, NULL, %s
        FROM {criterion}{source}
        WHERE {where}
        ORDER BY {criterion}.{qn("order")}, {criterion}.{qn("id")}
    """  # noqa: S608
    return sql, params


def _open_in_one_statement(case: ReviewCase, event: CaseEvent) -> None:
    """PostgreSQL: insert ``case``, its checks and ``event`` (pointed at the new
    case) in one round trip; the same rows as the ORM path of ``review_case_open``."""
    qn = connection.ops.quote_name
    case_columns, case_values = _insert_columns(case)
    event_columns, event_values = _insert_columns(event)
    case_fk = qn("case_id")
    event_select = ", ".join(
        "opened.id" if column == case_fk else "%s" for column in event_columns
    )
    event_params = [
        value
        for column, value in zip(event_columns, event_values, strict=True)
        if column != case_fk
    ]
    checks_sql, checks_params = _checks_insert(
        case.wants_affiliate, "opened.id", ", opened"
    )
    # Identifiers come from model metadata; every value is a bound parameter.
    sql = f"""
        WITH opened AS (
            INSERT INTO {qn(ReviewCase._meta.db_table)} ({", ".join(case_columns)})
            VALUES ({", ".join(["%s"] * len(case_columns))})
            RETURNING id
        ), checks AS ({checks_sql}
        ), logged AS (
            INSERT INTO {qn(CaseEvent._meta.db_table)} ({", ".join(event_columns)})
            SELECT {event_select} FROM opened
        )
        SELECT id FROM opened
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [*case_values, *checks_params, *event_params])
        (case.pk,) = cursor.fetchone()
    case._state.adding = False
    case._state.db = connection.alias


# --- claiming -------------------------------------------------------------------------


def review_case_claim_next(*, actor: User) -> ReviewCase | None:
    """Give ``actor`` the oldest queued case, or None when the queue is empty.

    On PostgreSQL concurrent callers skip each other's locked rows
    (``FOR UPDATE SKIP LOCKED``), so each gets a different case without waiting.
    This is the busiest write of the product, so there it is one statement (pick,
    claim and audit in a single round trip, atomic by itself); the field values
    still come from the ``ReviewCase.claim`` transition.
    """
    _require_perm(actor, WORK, "claim cases")
    if connection.vendor == "postgresql":
        return _claim_next_in_one_statement(actor)
    with transaction.atomic():
        case = (
            ReviewCase.objects.filter(state=ReviewCase.State.QUEUED)
            .order_by("submitted_at", "id")
            .select_for_update(skip_locked=True)
            .first()
        )
        if case is None:
            return None
        return _claim(case, actor)


def _claim_next_in_one_statement(actor: User) -> ReviewCase | None:
    # Run the pure transition on a stand-in to get exactly the values it sets.
    claimed = ReviewCase(state=ReviewCase.State.QUEUED)
    _run(claimed.claim, reviewer=actor)
    case_table = ReviewCase._meta.db_table
    columns = [field.column for field in ReviewCase._meta.concrete_fields]
    returning = ", ".join(f"c.{connection.ops.quote_name(col)}" for col in columns)
    # Identifiers come from model metadata; every value is a bound parameter.
    sql = f"""
        WITH picked AS (
            SELECT id FROM {case_table}
            WHERE state = %(queued)s
            ORDER BY submitted_at, id
            LIMIT 1
            FOR UPDATE SKIP LOCKED
        ), claimed AS (
            UPDATE {case_table} AS c
            SET state = %(state)s, assignee_id = %(assignee)s,
                claimed_at = %(claimed_at)s, last_activity_at = %(last_activity_at)s,
                state_changed_at = %(state_changed_at)s
            FROM picked WHERE c.id = picked.id
            RETURNING {returning}
        ), logged AS (
            INSERT INTO {CaseEvent._meta.db_table}
                (case_id, account_id, code, actor_id, actor_kind, from_state,
                 to_state, payload, created_at)
            SELECT id, account_id, %(code)s, %(assignee)s, %(actor_kind)s,
                   %(queued)s, %(state)s, '{{}}'::jsonb, %(claimed_at)s
            FROM claimed
        )
        SELECT * FROM claimed
    """  # noqa: S608
    params = {
        "queued": ReviewCase.State.QUEUED,
        "state": claimed.state,
        "assignee": actor.pk,
        "claimed_at": claimed.claimed_at,
        "last_activity_at": claimed.last_activity_at,
        "state_changed_at": claimed.state_changed_at,
        "code": audit.CASE_CLAIMED,
        "actor_kind": CaseEvent.ActorKind.USER,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    field_names = [field.attname for field in ReviewCase._meta.concrete_fields]
    values = [
        field.from_db_value(value, None, connection)
        if hasattr(field, "from_db_value")
        else value
        for field, value in zip(ReviewCase._meta.concrete_fields, row, strict=True)
    ]
    case = ReviewCase.from_db(connection.alias, field_names, values)
    case.assignee = actor
    return case


@transaction.atomic
def review_case_claim(*, actor: User, case_id: int) -> ReviewCase:
    """Give ``actor`` this queued case. Claiming a case you already hold is a no-op."""
    _require_perm(actor, WORK, "claim cases")
    case = _lock_case(case_id)
    if case.state == ReviewCase.State.IN_REVIEW and case.assignee_id == actor.pk:
        return case
    if case.state == ReviewCase.State.IN_REVIEW:
        raise ActionRefused(
            f"{case.reference} is already being reviewed ({_holder_text(case)}). "
            "Claim the next case instead, or ask a senior reviewer to reassign it.",
            code="taken",
        )
    if case.state != ReviewCase.State.QUEUED:
        raise _state_refusal(case, "claim", "queued")
    return _claim(case, actor)


def _claim(case: ReviewCase, actor: User) -> ReviewCase:
    from_state = case.state
    _run(case.claim, reviewer=actor)
    case.save(update_fields=_CASE_FIELDS)
    audit.log_event(
        audit.CASE_CLAIMED,
        case=case,
        actor=actor,
        from_state=from_state,
        to_state=case.state,
    )
    return case


@transaction.atomic
def review_case_release(*, actor: User, case_id: int, note: str = "") -> ReviewCase:
    """Put a case in review back in the queue. The assignee, or a senior for any."""
    _require_perm(actor, WORK, "release cases")
    case = _lock_case(case_id)
    if case.state != ReviewCase.State.IN_REVIEW:
        raise _state_refusal(case, "release", "in review")
    if not actor.has_perm(SUPERVISE):
        _require_assignee(case, actor, "release")
    former = case.assignee_id
    _run(case.release)
    case.save(update_fields=_CASE_FIELDS)
    audit.log_event(
        audit.CASE_RELEASED,
        case=case,
        actor=actor,
        from_state=ReviewCase.State.IN_REVIEW,
        to_state=case.state,
        payload={"former_assignee": former, "note": note[:500]},
    )
    return case


@transaction.atomic
def review_case_escalate(*, actor: User, case_id: int, note: str) -> ReviewCase:
    """Hand a case in review to the senior reviewers, with a note saying why."""
    _require_perm(actor, WORK, "escalate cases")
    case = _lock_case(case_id)
    _require_assignee(case, actor, "escalate")
    note = (note or "").strip()
    if not note:
        raise ActionRefused(
            f"Escalating {case.reference} needs a note: say why a senior reviewer "
            "should decide it.",
            code="note_required",
        )
    _run(case.escalate, note=note)
    case.save(update_fields=[*_CASE_FIELDS, "escalation_note"])
    audit.log_event(
        audit.CASE_ESCALATED,
        case=case,
        actor=actor,
        from_state=ReviewCase.State.IN_REVIEW,
        to_state=case.state,
        payload={"note": note[:1000]},
    )
    return case


@transaction.atomic
def review_case_take(*, actor: User, case_id: int) -> ReviewCase:
    """A senior reviewer takes an escalated case into review."""
    _require_perm(actor, SUPERVISE, "take escalated cases")
    case = _lock_case(case_id)
    if case.state != ReviewCase.State.ESCALATED:
        raise _state_refusal(case, "take", "escalated")
    _run(case.take, reviewer=actor)
    case.save(update_fields=_CASE_FIELDS)
    audit.log_event(
        audit.CASE_TAKEN,
        case=case,
        actor=actor,
        from_state=ReviewCase.State.ESCALATED,
        to_state=case.state,
    )
    return case


@transaction.atomic
def review_case_reassign(*, actor: User, case_id: int, assignee: User) -> ReviewCase:
    """A senior reviewer gives an open case to another reviewer."""
    _require_perm(actor, SUPERVISE, "reassign cases")
    if not (assignee.is_active and assignee.has_perm(WORK)):
        raise ActionRefused(
            f"{assignee} cannot be given {case_reference(case_id)}: they are not an "
            "active reviewer. Choose a reviewer or senior reviewer.",
            code="not_a_reviewer",
        )
    case = _lock_case(case_id)
    from_state = case.state
    former = case.assignee_id
    if case.state == ReviewCase.State.QUEUED:
        _run(case.claim, reviewer=assignee)
    elif case.state == ReviewCase.State.ESCALATED:
        _run(case.take, reviewer=assignee)
    elif case.state == ReviewCase.State.IN_REVIEW:
        _run(case.hand_over, reviewer=assignee)
    else:
        raise _state_refusal(case, "reassign", "open")
    case.save(update_fields=_CASE_FIELDS)
    audit.log_event(
        audit.CASE_REASSIGNED,
        case=case,
        actor=actor,
        from_state=from_state,
        to_state=case.state,
        payload={"former_assignee": former, "assignee": assignee.pk},
    )
    return case


@transaction.atomic
def review_cases_release_stale(*, now: datetime | None = None) -> list[int]:
    """Return claims untouched for longer than the lease to the queue.

    The former assignee's later actions are refused: they no longer hold the case.
    """
    cutoff = (now or timezone.now()) - settings.REVIEW_CLAIM_LEASE
    stale = list(
        ReviewCase.objects.filter(
            state=ReviewCase.State.IN_REVIEW, last_activity_at__lt=cutoff
        )
        .order_by("last_activity_at")
        .select_for_update(skip_locked=True)[:500]
    )
    for case in stale:
        former = case.assignee_id
        idle_since = case.last_activity_at
        _run(case.release)
        case.save(update_fields=_CASE_FIELDS)
        audit.log_event(
            audit.CASE_LEASE_EXPIRED,
            case=case,
            actor_kind=CaseEvent.ActorKind.SYSTEM,
            from_state=ReviewCase.State.IN_REVIEW,
            to_state=case.state,
            payload={
                "former_assignee": former,
                "idle_since": idle_since.isoformat() if idle_since else None,
            },
        )
    return [case.pk for case in stale]


# --- the checklist --------------------------------------------------------------------


@transaction.atomic
def review_case_record_checks(
    *, actor: User, case_id: int, changes: Iterable[CheckChange]
) -> list[CheckResult]:
    """Record checklist results for a case the actor holds; all or nothing.

    An edit made against an older version of a check (someone else saved in
    between) refuses the whole save with ``StaleEdit``; nothing is overwritten.
    """
    _require_perm(actor, WORK, "record checks")
    case = _lock_case(case_id)
    _require_assignee(case, actor, "change the checklist of")
    changes = list(changes)
    checks = {
        check.criterion_id: check
        for check in CheckResult.objects.select_for_update(of=("self",))
        .filter(case=case)
        .select_related("criterion", "checked_by")
    }
    valid_results = set(CheckResult.Result.values)
    changed: list[CheckResult] = []
    now = timezone.now()
    for change in changes:
        check = checks.get(change.criterion_id)
        if check is None:
            missing = Criterion.objects.filter(pk=change.criterion_id).first()
            raise ActionRefused(
                f"{f'“{missing.title}”' if missing else 'That criterion'} is not on "
                f"the checklist of {case.reference}; reload the case and record "
                "only the criteria it lists."
            )
        title = check.criterion.title
        if change.result not in valid_results:
            raise ActionRefused(
                f"'{change.result}' is not a result for “{title}”; choose one of "
                f"{', '.join(sorted(valid_results))}."
            )
        if (
            change.result == CheckResult.Result.NOT_APPLICABLE
            and check.criterion.applies_to == Criterion.AppliesTo.ALL
        ):
            raise ActionRefused(
                f"“{title}” is a core criterion: it applies to every request and "
                "cannot be marked not applicable. Mark it pass or fail."
            )
        if (
            change.result == CheckResult.Result.NOT_APPLICABLE
            and not (change.note or "").strip()
        ):
            # Affiliate criteria are only on the checklist of partners who asked for
            # affiliate payments: skipping one must be explained, not silent.
            raise ActionRefused(
                f"Say in the note why “{title}” does not apply to this partner: "
                "they asked for affiliate payments, so it normally does.",
                code="note_required",
            )
        if (
            change.expected_version is not None
            and change.expected_version != check.version
        ):
            who = check.checked_by or "someone"
            raise StaleEdit(
                f"{who} changed “{title}” to {check.get_result_display().lower()} "
                "while you were editing. Nothing was saved: reload the case to see "
                "their change, then save yours again."
            )
        note = (change.note or "").strip()
        if change.result == check.result and note == check.note:
            continue
        before = check.result
        check.result = change.result
        check.note = note
        check.checked_by = actor
        check.checked_at = now
        check.version += 1
        check.save(
            update_fields=["result", "note", "checked_by", "checked_at", "version"]
        )
        changed.append(check)
        audit.log_event(
            audit.CASE_CHECK_RECORDED,
            case=case,
            actor=actor,
            payload={
                "criterion": check.criterion.code,
                "from": before,
                "to": check.result,
                "note": note[:500],
            },
        )
    if changed:
        _touch(case)
    return changed


def review_case_record_check(
    *,
    actor: User,
    case_id: int,
    criterion_id: int,
    result: str,
    note: str = "",
    expected_version: int | None = None,
) -> CheckResult | None:
    """Record one check result; see ``review_case_record_checks``."""
    changed = review_case_record_checks(
        actor=actor,
        case_id=case_id,
        changes=[CheckChange(criterion_id, result, note, expected_version)],
    )
    return changed[0] if changed else None


# --- decisions ------------------------------------------------------------------------


def _queue_notification(case: ReviewCase, kind: str, actor: User) -> Notification:
    account = case.account
    notification = Notification.objects.create(
        case=case,
        kind=kind,
        to_email=account.contact_email,
        to_name=account.contact_name,
    )
    audit.log_event(
        audit.EMAIL_QUEUED,
        case=case,
        actor=actor,
        payload={"kind": kind, "notification": notification.pk},
    )
    from reviews import tasks

    enqueue_after_commit(tasks.notification_send, notification.pk)
    return notification


def _decide(case: ReviewCase, actor: User, transition, key_transition: str) -> ApiKey:
    """Record the decision on the case and carry it to the key, both locked."""
    key = ApiKey.objects.select_for_update().get(pk=case.key_id)
    _run(transition, reviewer=actor)
    case.save(update_fields=[*_CASE_FIELDS, "decided_by", "decided_at"])
    _run(getattr(key, key_transition))
    key.save(update_fields=["status", "status_changed_at"])
    return key


@transaction.atomic
def review_case_approve(*, actor: User, case_id: int) -> ReviewCase:
    """Approve: the key becomes active; the approval email is queued after commit."""
    _require_perm(actor, WORK, "approve cases")
    case = _lock_case(case_id)
    _require_assignee(case, actor, "approve")
    checks = list(
        CheckResult.objects.filter(case=case)
        .select_related("criterion")
        .order_by("criterion__order")
    )
    blocking = [check for check in checks if check.result not in PASSING]
    if blocking:
        listed = "; ".join(
            f"“{check.criterion.title}” is {check.get_result_display().lower()}"
            for check in blocking
        )
        raise ActionRefused(
            f"{case.reference} cannot be approved: {listed}. Every applicable "
            "criterion must pass before approval.",
            code="criteria_not_passed",
        )
    key = _decide(case, actor, case.approve, "activate")
    audit.log_event(
        audit.CASE_APPROVED,
        case=case,
        actor=actor,
        from_state=ReviewCase.State.IN_REVIEW,
        to_state=case.state,
        payload={"key": key.platform_key_id, "key_status": key.status},
    )
    _queue_notification(case, Notification.Kind.APPROVAL, actor)
    return case


@transaction.atomic
def review_case_deny(
    *, actor: User, case_id: int, reasons: Sequence[DenialChoice]
) -> ReviewCase:
    """Deny with reasons: the key is denied; the denial email is queued after commit.

    Needs at least one failed criterion and at least one active reason, each
    belonging to a failed criterion. The reasons' texts are frozen on the case.
    """
    _require_perm(actor, WORK, "deny cases")
    case = _lock_case(case_id)
    _require_assignee(case, actor, "deny")
    failed = set(
        CheckResult.objects.filter(
            case=case, result=CheckResult.Result.FAIL
        ).values_list("criterion_id", flat=True)
    )
    if not failed:
        raise ActionRefused(
            f"{case.reference} cannot be denied: no criterion is marked failed. "
            "Mark the criteria that failed on the checklist first.",
            code="no_failed_criterion",
        )
    if not reasons:
        raise ActionRefused(
            f"{case.reference} cannot be denied without a reason. Choose at least "
            "one denial reason: support reads them to the partner.",
            code="reason_required",
        )
    wanted = {choice.reason_id: choice.detail.strip() for choice in reasons}
    catalogue = {
        reason.pk: reason
        for reason in DenialReason.objects.filter(pk__in=wanted).select_related(
            "criterion"
        )
    }
    for reason_id in wanted:
        reason = catalogue.get(reason_id)
        if reason is None or not reason.is_active:
            which = f"“{reason.title}” was retired" if reason else "no longer exists"
            raise ActionRefused(
                f"The chosen denial reason {which}; reload the page and choose again.",
                code="reason_retired",
            )
        if reason.criterion_id not in failed:
            raise ActionRefused(
                f"The reason “{reason.title}” belongs to “{reason.criterion.title}”, "
                "which is not marked failed. Mark that criterion failed or choose "
                "another reason.",
                code="reason_not_failed",
            )
    key = _decide(case, actor, case.deny, "deny")
    CaseDenialReason.objects.bulk_create(
        CaseDenialReason(
            case=case,
            reason=catalogue[reason_id],
            title=catalogue[reason_id].title,
            support_text=catalogue[reason_id].support_text,
            detail=detail,
        )
        for reason_id, detail in wanted.items()
    )
    audit.log_event(
        audit.CASE_DENIED,
        case=case,
        actor=actor,
        from_state=ReviewCase.State.IN_REVIEW,
        to_state=case.state,
        payload={
            "key": key.platform_key_id,
            "key_status": key.status,
            "reasons": sorted(catalogue[reason_id].code for reason_id in wanted),
        },
    )
    _queue_notification(case, Notification.Kind.DENIAL, actor)
    return case


@transaction.atomic
def review_case_withdraw(*, case_id: int, note: str = "") -> ReviewCase:
    """The platform withdrew the request (key deleted): close the open case.

    No decision email is sent. The key is withdrawn with it.
    """
    case = _lock_case(case_id)
    if not case.is_open:
        raise _state_refusal(case, "withdraw", "open")
    from_state = case.state
    key = ApiKey.objects.select_for_update().get(pk=case.key_id)
    _run(case.withdraw)
    case.save(update_fields=_CASE_FIELDS)
    if key.status == ApiKey.Status.PENDING_APPROVAL:
        _run(key.withdraw)
        key.save(update_fields=["status", "status_changed_at"])
    audit.log_event(
        audit.CASE_WITHDRAWN,
        case=case,
        actor_kind=CaseEvent.ActorKind.PLATFORM,
        from_state=from_state,
        to_state=case.state,
        payload={"key": key.platform_key_id, "note": note[:500]},
    )
    return case
