"""The platform's HTTP API (DESIGN §6): signed events in, key status out.

Plain function views, no framework: both endpoints are hot (issue 4 wants 1,000
status reads/s and 300 signed events/s on two workers), so each does only its
own work — size check, signature, one service call; or token check and one query.
Every error is an RFC 9457 problem document.
"""

from __future__ import annotations

import binascii
import hmac
import json
import logging
from datetime import UTC
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from standardwebhooks import Webhook, WebhookVerificationError

from reviews.models import ApiKey, ReviewCase, case_reference
from reviews.schemas import PROBLEM_CONTENT_TYPE, Problem, field_error
from reviews.services import platform_event_ingest

logger = logging.getLogger(__name__)

WEBHOOK_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
MAX_WEBHOOK_ID_LENGTH = 255  # PlatformEventReceipt.webhook_id


def _json_response(
    status: int, body: dict[str, Any], content_type: str = "application/json"
) -> HttpResponse:
    # Sorted keys: a stored answer read back from PostgreSQL's jsonb (which keeps
    # its own key order) is sent byte for byte as it was the first time.
    return HttpResponse(
        json.dumps(body, ensure_ascii=False, sort_keys=True).encode(),
        status=status,
        content_type=content_type,
    )


def _problem_response(problem: Problem, **headers: str) -> HttpResponse:
    response = _json_response(
        problem.status, problem.document(), content_type=PROBLEM_CONTENT_TYPE
    )
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _method_not_allowed(request: HttpRequest, allowed: str) -> HttpResponse:
    return _problem_response(
        Problem(
            status=405,
            slug="method-not-allowed",
            title="Method not allowed",
            detail=f"{request.method} is not allowed here; use {allowed}.",
        ),
        Allow=allowed,
    )


# --- events in ----------------------------------------------------------------------


@lru_cache(maxsize=4)
def _webhook(secret: str) -> Webhook:
    return Webhook(secret)


def _too_large(limit: int) -> HttpResponse:
    return _problem_response(
        Problem(
            status=413,
            slug="body-too-large",
            title="The event is too large",
            detail=f"Events may be at most {limit} bytes.",
        )
    )


def _unsigned(detail: str) -> HttpResponse:
    return _problem_response(
        Problem(
            status=401,
            slug="bad-signature",
            title="The event's signature could not be verified",
            detail=detail,
        ),
        WWW_Authenticate='Webhook-Signature realm="platform-events"',
    )


def _verify(request: HttpRequest, body: bytes) -> str | HttpResponse:
    """The verified ``webhook-id``, or the 401 answer saying what is wrong."""
    headers = {name: request.headers.get(name, "") for name in WEBHOOK_HEADERS}
    missing = [name for name, value in headers.items() if not value]
    if missing:
        return _unsigned(
            f"Missing header(s): {', '.join(missing)}. Sign each event with the "
            "Standard Webhooks scheme and the shared secret."
        )
    try:
        _webhook(settings.PLATFORM_WEBHOOK_SECRET).verify(
            body, headers, json_parse=False
        )
    except WebhookVerificationError as exc:
        reason = str(exc)
        if "too old" in reason or "too new" in reason:
            return _unsigned(
                "The webhook-timestamp is more than 5 minutes away from our clock. "
                "Sign the event when you send it (and check the sender's clock)."
            )
        if "Invalid Signature Headers" in reason:
            return _unsigned("The webhook-timestamp must be Unix time in seconds.")
        return _unsigned(
            "No signature in webhook-signature matches this body. Sign "
            "'<webhook-id>.<webhook-timestamp>.<body>' with the shared secret."
        )
    except (ValueError, binascii.Error):
        # Malformed signature list, bad base64, or a body that is not UTF-8.
        return _unsigned(
            "The webhook-signature header is malformed or the body is not UTF-8; "
            "send 'v1,<base64 signature>' over the exact UTF-8 body."
        )
    webhook_id = headers["webhook-id"]
    if len(webhook_id) > MAX_WEBHOOK_ID_LENGTH:
        return _problem_response(
            Problem(
                status=400,
                slug="invalid-webhook-id",
                title="The webhook-id is too long",
                detail=f"Use a webhook-id of at most {MAX_WEBHOOK_ID_LENGTH} "
                "characters.",
                errors=[
                    field_error(
                        "webhook-id", f"At most {MAX_WEBHOOK_ID_LENGTH} characters."
                    )
                ],
            )
        )
    return webhook_id


@csrf_exempt
def platform_events(request: HttpRequest) -> HttpResponse:
    """``POST /api/v1/platform-events``: one signed event; see DESIGN §6."""
    if request.method != "POST":
        return _method_not_allowed(request, "POST")
    limit = settings.PLATFORM_EVENT_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return _too_large(limit)  # before reading a byte of it
    body = request.read(limit + 1)
    if len(body) > limit:
        return _too_large(limit)
    verified = _verify(request, body)
    if isinstance(verified, HttpResponse):
        return verified
    try:
        answer = platform_event_ingest(webhook_id=verified, body=body)
    except DatabaseError:
        # Deadlock, lost connection…: nothing was stored, the platform retries.
        logger.exception("platform event %s not ingested", verified)
        return _problem_response(
            Problem(
                status=503,
                slug="try-again",
                title="The event could not be stored right now",
                detail="Nothing was stored. Deliver the event again shortly.",
            ),
            Retry_After="5",
        )
    return _json_response(answer.status, answer.body, answer.content_type)


# --- status out -----------------------------------------------------------------------


def _unauthorised(detail: str, error: str = "") -> HttpResponse:
    challenge = 'Bearer realm="review-desk"'
    if error:
        challenge += f', error="{error}"'
    return _problem_response(
        Problem(
            status=401,
            slug="unauthorised",
            title="A valid bearer token is required",
            detail=detail,
        ),
        WWW_Authenticate=challenge,
    )


def _token_ok(presented: str) -> bool:
    expected = settings.PLATFORM_API_TOKEN
    # Constant time: the comparison does not tell how much of the token matched.
    return bool(expected) and hmac.compare_digest(presented.encode(), expected.encode())


@lru_cache(maxsize=4)
def _key_status_sql(vendor: str) -> str:
    """The SQL of the status query, built by the ORM once per process.

    Building and compiling the queryset costs several times more than running
    it; this endpoint is polled by the platform's dashboard, so it runs the
    compiled SQL directly. (The vendor is in the cache key only to keep the SQL
    right if a process ever switches backends, as tests can.)
    """
    latest_case = (
        ReviewCase.objects.filter(key=OuterRef("pk")).order_by("-id").values("id")[:1]
    )
    query = (
        ApiKey.objects.filter(platform_key_id="?")
        .annotate(case_id=Subquery(latest_case))
        .values_list("platform_key_id", "status", "status_changed_at", "case_id")[:1]
    ).query
    sql, params = query.sql_with_params()
    if params != ("?",):
        raise RuntimeError(f"Unexpected parameters in the key status query: {params}")
    return sql


def api_key_status_get(*, platform_key_id: str) -> dict[str, Any] | None:
    """The key's status and latest case reference, in one query."""
    with connection.cursor() as cursor:
        cursor.execute(_key_status_sql(connection.vendor), [platform_key_id])
        row = cursor.fetchone()
    if row is None:
        return None
    key_id, status, changed_at, case_id = row
    if isinstance(changed_at, str):  # SQLite hands back its text form (UTC)
        changed_at = parse_datetime(changed_at)
    if timezone.is_naive(changed_at):
        changed_at = timezone.make_aware(changed_at, UTC)
    return {
        "id": key_id,
        "status": status,
        "case": case_reference(case_id) if case_id else None,
        "status_changed_at": changed_at.isoformat(),
    }


def key_status(request: HttpRequest, key_id: str) -> HttpResponse:
    """``GET /api/v1/keys/<key id>`` with the platform's bearer token."""
    if request.method != "GET":
        return _method_not_allowed(request, "GET")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return _unauthorised(
            "Send 'Authorization: Bearer <token>' with the platform's API token."
        )
    if not _token_ok(token):
        return _unauthorised(
            "The bearer token is not valid. Use the platform's current API token.",
            error="invalid_token",
        )
    status = api_key_status_get(platform_key_id=key_id)
    if status is None:
        return _problem_response(
            Problem(
                status=404,
                slug="unknown-key",
                title="Unknown key",
                detail=f"No key {key_id[:100]} was ever requested for review. "
                "Check the key id.",
            )
        )
    response = _json_response(200, status)
    response["Cache-Control"] = "no-store"
    return response
