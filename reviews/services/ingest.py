"""Platform events in (DESIGN §6): one transaction per delivery, idempotent per id.

``platform_event_ingest`` is what the signed endpoint, the replay command and the
demo call. It stores a ``PlatformEventReceipt`` holding the answer for every
delivery, so a redelivery of the same ``webhook-id`` gets the first answer back and
changes nothing. The receipt row is inserted *first*: a concurrent delivery of the
same id blocks on the unique index until the first commits, then reads its answer.

Key and account writes live here too (``developer_account_upsert``,
``api_key_resubmit``, ``api_key_revoke``); case writes go through ``cases.py``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from accounts.models import DeveloperAccount, DeveloperAccountEmail
from reviews import audit
from reviews.errors import ActionRefused
from reviews.models import ApiKey, CaseEvent, PlatformEventReceipt, ReviewCase
from reviews.schemas import (
    PROBLEM_CONTENT_TYPE,
    AccountPayload,
    AccountUpdated,
    KeyDeleted,
    KeyRequested,
    PlatformEvent,
    Problem,
    field_error,
    parse_event,
)

from .cases import _insert_columns, review_case_open, review_case_withdraw

JSON_CONTENT_TYPE = "application/json"

_PLATFORM = CaseEvent.ActorKind.PLATFORM


@dataclass(frozen=True)
class IngestAnswer:
    """What the endpoint answers: HTTP status, JSON body and its content type."""

    status: int
    body: dict[str, Any]
    content_type: str = JSON_CONTENT_TYPE
    # True when this is the stored answer to an earlier delivery of the same id.
    replayed: bool = False

    @classmethod
    def of(cls, status: int, body: dict[str, Any], *, replayed: bool = False):
        content_type = PROBLEM_CONTENT_TYPE if status >= 400 else JSON_CONTENT_TYPE
        return cls(status, body, content_type, replayed)


# --- partner accounts ------------------------------------------------------------


@dataclass(frozen=True)
class AccountUpsert:
    account: DeveloperAccount
    created: bool
    changed: list[str] = field(default_factory=list)


@transaction.atomic
def developer_account_upsert(
    *,
    platform_account_id: str,
    name: str,
    contact_email: str,
    contact_name: str | None = None,
    help_desk_account_id: str | None = None,
    wants_affiliate: bool | None = None,
    tastemakers_account_id: str | None = None,
    affiliate_partner_id: str | None = None,
) -> AccountUpsert:
    """Create or update a partner from the platform's account details.

    ``None`` leaves a field as it is. Every contact address is recorded
    (lower-cased) in ``DeveloperAccountEmail`` so support finds the partner by an
    old one. Audits ``accounts.account.created`` / ``accounts.account.updated``
    with the names of the fields that changed (never their values).
    """
    wanted = {
        "name": name,
        "contact_email": contact_email,
        "contact_name": contact_name,
        "help_desk_account_id": help_desk_account_id,
        "wants_affiliate": wants_affiliate,
        "tastemakers_account_id": tastemakers_account_id,
        "affiliate_partner_id": affiliate_partner_id,
    }
    return _account_write(
        _lock_account(platform_account_id),
        platform_account_id,
        {field: value for field, value in wanted.items() if value is not None},
    )


def _lock_account(platform_account_id: str) -> DeveloperAccount | None:
    if connection.vendor == "postgresql":
        rows = _select_rows(
            _lock_sql(DeveloperAccount, "platform_account_id"), [platform_account_id]
        )
        return _from_row(DeveloperAccount, rows[0]) if rows else None
    return (
        DeveloperAccount.objects.select_for_update()
        .filter(platform_account_id=platform_account_id)
        .first()
    )


def _lock_key_with_account(platform_key_id: str) -> ApiKey | None:
    """The key (locked, not its partner) with its partner loaded, or None."""
    if connection.vendor == "postgresql":
        rows = _select_rows(_lock_key_sql(), [platform_key_id])
        if not rows:
            return None
        width = len(ApiKey._meta.concrete_fields)
        key = _from_row(ApiKey, rows[0][:width])
        key.account = _from_row(DeveloperAccount, rows[0][width:])
        return key
    return (
        ApiKey.objects.select_for_update(of=("self",))
        .select_related("account")
        .filter(platform_key_id=platform_key_id)
        .first()
    )


# The two locks every key request takes, on PostgreSQL as plain statements built
# once per process (the ORM's compiler costs more CPU than the index lookup).


@functools.cache
def _lock_sql(model, column: str) -> str:
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    # Identifiers come from model metadata; the value is a bound parameter.
    return (
        f"SELECT {_columns(model, table)} FROM {table} "  # noqa: S608
        f"WHERE {qn(column)} = %s LIMIT 1 FOR UPDATE"
    )


@functools.cache
def _lock_key_sql() -> str:
    qn = connection.ops.quote_name
    key, account = qn(ApiKey._meta.db_table), qn(DeveloperAccount._meta.db_table)
    # Identifiers come from model metadata; the value is a bound parameter.
    return (
        f"SELECT {_columns(ApiKey, key)}, {_columns(DeveloperAccount, account)} "  # noqa: S608
        f"FROM {key} INNER JOIN {account} "
        f"ON {account}.{qn('id')} = {key}.{qn('account_id')} "
        f"WHERE {key}.{qn('platform_key_id')} = %s LIMIT 1 FOR UPDATE OF {key}"
    )


def _columns(model, table: str) -> str:
    qn = connection.ops.quote_name
    return ", ".join(f"{table}.{qn(f.column)}" for f in model._meta.concrete_fields)


def _select_rows(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _from_row(model, row):
    """A model instance from a row of all its concrete columns (PostgreSQL)."""
    fields = model._meta.concrete_fields
    values = [
        field.from_db_value(value, None, connection)
        if hasattr(field, "from_db_value")
        else value
        for field, value in zip(fields, row, strict=True)
    ]
    return model.from_db(connection.alias, [f.attname for f in fields], values)


def _account_write(
    account: DeveloperAccount | None, platform_account_id: str, wanted: dict
) -> AccountUpsert:
    """Apply ``wanted`` to the locked ``account``, or create it when None."""
    if account is None and connection.vendor == "postgresql":
        filled = sorted(name for name, value in wanted.items() if value)
        account = _account_create_in_one_statement(platform_account_id, wanted, filled)
        if account is not None:
            return AccountUpsert(account, created=True, changed=filled)
        # Another delivery created it first; update that row instead.
        account = DeveloperAccount.objects.select_for_update().get(
            platform_account_id=platform_account_id
        )
    if account is None:
        try:
            with transaction.atomic():
                account = DeveloperAccount.objects.create(
                    platform_account_id=platform_account_id, **wanted
                )
        except IntegrityError:
            # Another delivery created it first; update that row instead.
            account = DeveloperAccount.objects.select_for_update().get(
                platform_account_id=platform_account_id
            )
        else:
            _record_contact_email(account)
            filled = sorted(name for name, value in wanted.items() if value)
            audit.log_event(
                audit.ACCOUNT_CREATED,
                account=account,
                actor_kind=_PLATFORM,
                payload={"account": platform_account_id, "fields": filled},
            )
            return AccountUpsert(account, created=True, changed=filled)
    changed = sorted(
        name for name, value in wanted.items() if getattr(account, name) != value
    )
    if changed:
        for name in changed:
            setattr(account, name, wanted[name])
        account.updated_at = timezone.now()
        account.save(update_fields=[*changed, "updated_at"])
        if "contact_email" in changed:
            _record_contact_email(account)
        audit.log_event(
            audit.ACCOUNT_UPDATED,
            account=account,
            actor_kind=_PLATFORM,
            payload={"account": platform_account_id, "fields": changed},
        )
    return AccountUpsert(account, created=False, changed=changed)


def _account_create_in_one_statement(
    platform_account_id: str, wanted: dict, filled: list[str]
) -> DeveloperAccount | None:
    """PostgreSQL: insert the partner, its contact address and the
    ``accounts.account.created`` audit row in one round trip; None when the
    partner exists already (``ON CONFLICT DO NOTHING`` waits for a concurrent
    creator to finish, like the unique index did for the savepointed INSERT).

    Writes exactly the rows of the ORM path in ``_account_write`` (used on
    SQLite): same columns, same defaults, same audit payload.
    """
    account = DeveloperAccount(platform_account_id=platform_account_id, **wanted)
    account_columns, account_values = _insert_columns(account)
    email = DeveloperAccountEmail(email=account.contact_email.lower())
    email_columns, email_values = _insert_columns(email)
    event = CaseEvent(
        code=audit.ACCOUNT_CREATED,
        actor_kind=_PLATFORM,
        payload={"account": platform_account_id, "fields": filled},
    )
    event_columns, event_values = _insert_columns(event)
    qn = connection.ops.quote_name
    account_fk = qn("account_id")

    def from_acct(columns: list[str], values: list) -> tuple[str, list]:
        # The new partner's id where the row points to it, a bound value elsewhere.
        select = ", ".join("acct.id" if c == account_fk else "%s" for c in columns)
        kept = [v for c, v in zip(columns, values, strict=True) if c != account_fk]
        return select, kept

    email_select, email_params = from_acct(email_columns, email_values)
    event_select, event_params = from_acct(event_columns, event_values)
    # Identifiers come from model metadata; every value is a bound parameter.
    sql = f"""
        WITH acct AS (
            INSERT INTO {qn(DeveloperAccount._meta.db_table)}
                ({", ".join(account_columns)})
            VALUES ({", ".join(["%s"] * len(account_columns))})
            ON CONFLICT ({qn("platform_account_id")}) DO NOTHING
            RETURNING id
        ), email AS (
            INSERT INTO {qn(DeveloperAccountEmail._meta.db_table)}
                ({", ".join(email_columns)})
            SELECT {email_select} FROM acct
            ON CONFLICT DO NOTHING
        ), logged AS (
            INSERT INTO {qn(CaseEvent._meta.db_table)} ({", ".join(event_columns)})
            SELECT {event_select} FROM acct
        )
        SELECT id FROM acct
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [*account_values, *email_params, *event_params])
        row = cursor.fetchone()
    if row is None:
        return None
    account.pk = row[0]
    account._state.adding = False
    account._state.db = connection.alias
    return account


def _record_contact_email(account: DeveloperAccount) -> None:
    DeveloperAccountEmail.objects.bulk_create(
        [DeveloperAccountEmail(account=account, email=account.contact_email.lower())],
        ignore_conflicts=True,
    )


def _account_upsert_from(
    payload: AccountPayload, locked: DeveloperAccount | None
) -> AccountUpsert:
    """Apply the platform's account details to the account the caller locked.

    Patch semantics: a field left out is unchanged, ``null`` clears it.
    """
    wanted: dict[str, Any] = {
        "name": payload.name,
        "contact_email": payload.contact_email,
    }
    for name in ("contact_name", "help_desk_account_id"):
        if payload.given(name):
            wanted[name] = getattr(payload, name) or ""
    if payload.given("affiliate"):
        details = payload.affiliate
        wanted["wants_affiliate"] = details is not None
        for ours, theirs in (
            ("tastemakers_account_id", "tastemakers_account_id"),
            ("affiliate_partner_id", "partner_id"),
        ):
            if details is None or details.given(theirs):
                wanted[ours] = (details and getattr(details, theirs)) or ""
    return _account_write(locked, payload.id, wanted)


# --- keys -----------------------------------------------------------------------------


def _transition(key: ApiKey, method, done: str, needed: str) -> None:
    try:
        method()
    except TransitionNotAllowed:
        raise ActionRefused(
            f"Key {key.platform_key_id} is {key.get_status_display().lower()}; only "
            f"a key that is {needed} can be {done}.",
            code="state",
        ) from None


def _lock_key(key_id: int) -> ApiKey:
    return (
        ApiKey.objects.select_for_update(of=("self",))
        .select_related("account")
        .get(pk=key_id)
    )


def _latest_case(key: ApiKey) -> ReviewCase | None:
    return ReviewCase.objects.filter(key=key).order_by("-id").first()


@transaction.atomic
def api_key_resubmit(*, key_id: int) -> ApiKey:
    """A denied key is requested again: back to pending approval (audited).

    The caller opens the new case in the same transaction.
    """
    key = _lock_key(key_id)
    from_status = key.status
    _transition(key, key.resubmit, "resubmitted", "denied")
    key.save(update_fields=["status", "status_changed_at"])
    audit.log_event(
        audit.KEY_RESUBMITTED,
        case=_latest_case(key),
        account=key.account,
        actor_kind=_PLATFORM,
        from_state=from_status,
        to_state=key.status,
        payload={"key": key.platform_key_id},
    )
    return key


@transaction.atomic
def api_key_revoke(*, key_id: int, note: str = "") -> ApiKey:
    """An active key was deleted on the platform: it is revoked (audited)."""
    key = _lock_key(key_id)
    from_status = key.status
    _transition(key, key.revoke, "revoked", "active")
    key.save(update_fields=["status", "status_changed_at"])
    audit.log_event(
        audit.KEY_REVOKED,
        case=_latest_case(key),
        account=key.account,
        actor_kind=_PLATFORM,
        from_state=from_status,
        to_state=key.status,
        payload={"key": key.platform_key_id, "note": note[:500]},
    )
    return key


def _key_json(key: ApiKey) -> dict[str, str]:
    return {"id": key.platform_key_id, "status": key.status}


# --- event handlers -----------------------------------------------------------------


_FINAL_KEY_STATES = {
    ApiKey.Status.ACTIVE: "is active: it was approved and works",
    ApiKey.Status.WITHDRAWN: "was withdrawn: the partner deleted it during review",
    ApiKey.Status.REVOKED: "was revoked: the partner deleted it after approval",
}


def _on_key_requested(event: KeyRequested) -> IngestAnswer:
    """Open a case for a new or denied key; a no-op or refusal writes nothing."""
    data = event.data
    account_id = data.account.id
    key_path = "data.key.id"
    # Events of one partner queue behind this lock, so two requests for one new
    # key cannot both see it as unknown.
    account = _lock_account(account_id)
    key = _lock_key_with_account(data.key.id)
    latest: ReviewCase | None = None
    if key is not None:
        # Refusals and no-ops come before any write: they change nothing.
        if account is None or key.account_id != account.pk:
            detail = (
                f"Key {key.platform_key_id} belongs to partner account "
                f"{key.account.platform_account_id}, not {account_id}."
            )
            raise Problem(
                status=409,
                slug="key-of-another-account",
                title="The key belongs to another account",
                detail=detail + " Send the key's own account, or use a new key id.",
                errors=[field_error(key_path, detail)],
                extra={"key": _key_json(key)},
            )
        latest = _latest_case(key)
        if latest is not None and latest.is_open:
            return IngestAnswer.of(
                200,
                {
                    "case": latest.reference,
                    "key": _key_json(key),
                    "detail": f"A review is already open for this key "
                    f"({latest.reference}); no new case was opened.",
                },
            )
        if key.status in _FINAL_KEY_STATES:
            detail = (
                f"Key {key.platform_key_id} {_FINAL_KEY_STATES[key.status]}; "
                "it cannot be reviewed again."
            )
            raise Problem(
                status=409,
                slug="key-not-reviewable",
                title=f"The key is {key.get_status_display().lower()}",
                detail=detail + " Create a new key to request another review.",
                errors=[field_error(key_path, detail)],
                extra={"key": _key_json(key)},
            )
    upsert = _account_upsert_from(data.account, account)
    account = upsert.account
    if key is None:
        # A concurrent first request for this key under a brand-new account can
        # still collide here: the unique key id aborts this delivery (503), and
        # the platform's retry is answered from the committed state.
        key = _insert(
            ApiKey(
                platform_key_id=data.key.id,
                account=account,
                name=data.key.name or "",
                last4=data.key.last4 or "",
                platform_created_at=data.key.created_at,
            )
        )
        previous = None
        if not upsert.created:
            # A partner created in this transaction has no earlier case to point to.
            previous = (
                ReviewCase.objects.filter(
                    account=account, state=ReviewCase.State.DENIED
                )
                .order_by("-decided_at", "-id")
                .first()
            )
        attempt = 1
    else:
        if key.status == ApiKey.Status.DENIED:
            key = api_key_resubmit(key_id=key.pk)
        _key_details_refresh(key, data.key)
        previous = latest
        attempt = latest.attempt + 1 if latest else 1
    integration = (
        data.integration.model_dump(exclude_none=True) if data.integration else {}
    )
    case = review_case_open(
        key=key,
        account=account,
        integration=integration,
        previous_case=previous,
        attempt=attempt,
        submitted_at=_submitted_at(event.timestamp, previous),
    )
    return IngestAnswer.of(202, {"case": case.reference, "key": _key_json(key)})


def _submitted_at(event_time, previous: ReviewCase | None):
    """When the partner asked: the event's time, never in the future and never
    before the decision it answers (a resubmission cannot predate its denial)."""
    submitted_at = min(event_time, timezone.now())
    if previous is not None and previous.decided_at is not None:
        submitted_at = max(submitted_at, previous.decided_at)
    return submitted_at


def _key_details_refresh(key: ApiKey, payload) -> None:
    """A resubmission may carry a new display name or hint for the same key."""
    changed = []
    for name, value in (("name", payload.name), ("last4", payload.last4)):
        if payload.given(name) and getattr(key, name) != (value or ""):
            setattr(key, name, value or "")
            changed.append(name)
    if changed:
        key.save(update_fields=changed)


def _on_key_deleted(event: KeyDeleted) -> IngestAnswer:
    key_id = event.data.key.id
    key = ApiKey.objects.filter(platform_key_id=key_id).first()
    if key is None:
        detail = f"No key {key_id} was ever requested for review."
        raise Problem(
            status=404,
            slug="unknown-key",
            title="Unknown key",
            detail=detail + " Check the key id.",
            errors=[field_error("data.key.id", detail)],
        )
    # Queue behind any request for this partner's keys (it locks the partner
    # first too): a deletion racing a re-request must see the case it opened,
    # or the deleted key would stay under review.
    DeveloperAccount.objects.select_for_update().filter(pk=key.account_id).exists()
    latest = _latest_case(key)
    detail = ""
    if latest is not None and latest.is_open:
        try:
            # Locks the case, then the key: the same order as a decision.
            review_case_withdraw(case_id=latest.pk, note="Key deleted on the platform.")
        except ActionRefused:
            pass  # Decided meanwhile: handled below by the key's new status.
        else:
            detail = (
                f"The open review {latest.reference} was withdrawn with the key; "
                "no decision email is sent."
            )
    key = ApiKey.objects.select_for_update().get(pk=key.pk)
    if not detail:
        if key.status == ApiKey.Status.ACTIVE:
            key = api_key_revoke(key_id=key.pk, note="Key deleted on the platform.")
            detail = "The key was active; it is now revoked."
        elif key.status in (ApiKey.Status.WITHDRAWN, ApiKey.Status.REVOKED):
            detail = f"The key was already {key.status}; nothing changed."
        else:
            detail = f"The key is {key.get_status_display().lower()}; nothing changed."
    return IngestAnswer.of(
        200,
        {
            "case": latest.reference if latest else None,
            "key": _key_json(key),
            "detail": detail,
        },
    )


def _on_account_updated(event: AccountUpdated) -> IngestAnswer:
    payload = event.data.account
    result = _account_upsert_from(payload, _lock_account(payload.id))
    return IngestAnswer.of(
        200,
        {
            "account": {
                "id": result.account.platform_account_id,
                "created": result.created,
                "changed": result.changed,
            }
        },
    )


_HANDLERS = {
    "production_key.requested": _on_key_requested,
    "production_key.deleted": _on_key_deleted,
    "account.updated": _on_account_updated,
}


# --- the entry point -----------------------------------------------------------------


def platform_event_ingest(*, webhook_id: str, body: bytes) -> IngestAnswer:
    """Handle one signed platform event; the signature is checked by the caller.

    Validates the body (400 naming every bad field, 422 for an unknown type),
    applies the event and stores the answer under ``webhook_id``, all in one
    transaction. A redelivery of the same id returns the stored answer and
    changes nothing. Refusals (4xx) write nothing but the receipt. No side effect
    is scheduled: emails only follow decisions.
    """
    try:
        return _ingest_new(webhook_id, body)
    except IntegrityError:
        # Seen before: the receipt's unique id refused this delivery. A concurrent
        # delivery of the same id waited on that index until the first committed.
        stored = PlatformEventReceipt.objects.filter(webhook_id=webhook_id).first()
        if stored is None:
            raise  # another constraint: nothing was stored, the platform retries
        return IngestAnswer.of(
            stored.response_status, stored.response_body, replayed=True
        )


@transaction.atomic
def _ingest_new(webhook_id: str, body: bytes) -> IngestAnswer:
    # The receipt goes in first, so a second delivery of this id blocks on it.
    receipt = _insert(
        PlatformEventReceipt(webhook_id=webhook_id, response_status=0, response_body={})
    )
    event_type = ""
    try:
        event: PlatformEvent = parse_event(body)
        event_type = event.type
        # Handlers decide refusals and no-ops before their first write.
        answer = _HANDLERS[event.type](event)
    except Problem as problem:
        answer = IngestAnswer.of(problem.status, problem.document())
        event_type = event_type or problem.event_type
    receipt.event_type = event_type[:64]
    receipt.response_status = answer.status
    receipt.response_body = answer.body
    _update(receipt, ["event_type", "response_status", "response_body"])
    return answer


# Every delivery writes a receipt and most a key: plain INSERT / UPDATE statements
# of the model's own columns and values, without the ORM's query compiler (about
# half the CPU of ``objects.create`` / ``save(update_fields=…)``). No model here
# has a custom ``save`` or save signals to skip.


def _insert(obj):
    """INSERT a new model instance (defaults applied), set its primary key, return it.

    A unique violation raises ``IntegrityError`` as ``objects.create`` would.
    """
    columns, values = _insert_columns(obj)
    qn = connection.ops.quote_name
    meta = obj._meta
    # Identifiers come from model metadata; every value is a bound parameter.
    sql = (
        f"INSERT INTO {qn(meta.db_table)} ({', '.join(columns)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(columns))}) RETURNING {qn(meta.pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        (obj.pk,) = cursor.fetchone()
    obj._state.adding = False
    obj._state.db = connection.alias
    return obj


def _update(obj, field_names: list[str]) -> None:
    """UPDATE these fields of a saved instance, like ``save(update_fields=…)``."""
    qn = connection.ops.quote_name
    meta = obj._meta
    fields = [meta.get_field(name) for name in field_names]
    assignments = ", ".join(f"{qn(field.column)} = %s" for field in fields)
    values = [
        field.get_db_prep_save(getattr(obj, field.attname), connection)
        for field in fields
    ]
    # Identifiers come from model metadata; every value is a bound parameter.
    sql = (
        f"UPDATE {qn(meta.db_table)} SET {assignments} "  # noqa: S608
        f"WHERE {qn(meta.pk.column)} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, obj.pk])
