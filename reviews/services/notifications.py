"""The email outbox: send, fail, resend, delivery status, sweep (DESIGN §4, §7).

A decision writes its ``Notification`` (status ``pending``) in the decision's
transaction and queues ``tasks.notification_send`` after commit. Sending is
idempotent: the sender locks the row and does nothing unless it is still pending.

Delivery is at least once: if the provider accepted a message but the database
commit that records it is lost, the row stays pending and the sweeper sends it
again. That is the price of never losing a decision email.
"""

from __future__ import annotations

import logging
import smtplib
from datetime import UTC, datetime, timedelta

import requests
from anymail.exceptions import (
    AnymailAPIError,
    AnymailError,
    AnymailInvalidAddress,
    AnymailRecipientsRefused,
)
from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from reviews import audit
from reviews.emails import notification_email
from reviews.errors import ActionRefused, PermissionRefused
from reviews.models import CaseEvent, Notification
from reviews.side_effects import enqueue_after_commit

logger = logging.getLogger(__name__)

RESEND = "reviews.resend_notification"
ERROR_MAX_LENGTH = 2000
DETAIL_MAX_LENGTH = 500
SWEEP_BATCH = 500


class TransientEmailError(Exception):
    """The provider failed in a way worth retrying (5xx, 429, network, timeout).

    The attempt is already recorded on the notification, which stays pending.
    """

    def __init__(self, notification_id: int, error: str) -> None:
        super().__init__(f"Notification {notification_id}: {error}")
        self.notification_id = notification_id
        self.error = error


def is_transient_email_error(error: BaseException) -> bool:
    """True when trying again later may succeed; False for a permanent refusal."""
    if isinstance(error, AnymailRecipientsRefused | AnymailInvalidAddress):
        return False
    if isinstance(error, AnymailAPIError):
        status = error.status_code
        if status is None:
            # No HTTP answer at all: anymail wraps requests' own exception, so the
            # error is also a ConnectionError / Timeout when the network failed.
            network = (requests.ConnectionError, requests.Timeout)
            return isinstance(error, network) or isinstance(error.__cause__, network)
        # 4xx is a refusal of this message; a garbled 2xx means it was probably
        # accepted, so it must not be sent again either.
        return status in (408, 429) or status >= 500
    if isinstance(error, AnymailError):
        return False
    if isinstance(error, smtplib.SMTPResponseException):
        return 400 <= error.smtp_code < 500
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return True
    if isinstance(error, smtplib.SMTPException):
        return False
    # Connection refused/reset, DNS failure, socket timeout.
    return isinstance(error, OSError)


def _describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    if len(text) > ERROR_MAX_LENGTH:
        text = text[: ERROR_MAX_LENGTH - 1] + "…"
    return text


def _message_id(message) -> str:
    """The provider's message id (anymail), or "" when the backend has none."""
    status = getattr(message, "anymail_status", None)
    message_id = getattr(status, "message_id", None)
    if message_id is None or isinstance(message_id, set):
        return ""
    return str(message_id)


def _lock(notification_id: int, *, skip_locked: bool = False) -> Notification | None:
    return (
        Notification.objects.select_for_update(skip_locked=skip_locked, of=("self",))
        .select_related("case__account", "case__key")
        .filter(pk=notification_id)
        .first()
    )


def _log(notification: Notification, code: str, *, actor=None, **payload) -> None:
    audit.log_event(
        code,
        case=notification.case,
        actor=actor,
        actor_kind=CaseEvent.ActorKind.USER if actor else CaseEvent.ActorKind.SYSTEM,
        payload={"notification": notification.pk, "kind": notification.kind, **payload},
    )


def notification_send(*, notification_id: int) -> Notification | None:
    """Render and send one pending notification; return it, or None if skipped.

    Skips (returns None) when the row is gone, already sent or failed, or locked
    by another sender at this moment. On success: status ``sent``, the rendered
    email stored on the row, provider message id, audit ``reviews.email.sent``.
    A permanent error ends in ``failed`` (audit ``reviews.email.failed``). A
    transient error is recorded (attempts, last error) and committed, then
    ``TransientEmailError`` is raised so the task retries.

    The row lock is held while the provider is called, so a concurrent sender
    skips instead of sending twice. The outcome, good or bad, is written inside
    that same transaction and committed; only then is a transient error raised.
    """
    transient: TransientEmailError | None = None
    with transaction.atomic():
        notification = _lock(notification_id, skip_locked=True)
        if notification is None:
            logger.info(
                "Notification %s is gone or being sent: skipped", notification_id
            )
            return None
        if notification.status != Notification.Status.PENDING:
            return None
        now = timezone.now()
        notification.attempts += 1
        notification.updated_at = now
        fields = ["attempts", "updated_at", "last_error"]
        try:
            message = notification_email(notification)
            notification.subject = message.subject[:255]
            notification.body_text = message.body
            notification.body_html = next(
                (
                    content
                    for content, mimetype in message.alternatives
                    if mimetype == "text/html"
                ),
                "",
            )
            fields += ["subject", "body_text", "body_html"]
            if not message.send():
                raise RuntimeError(
                    "The email backend did not send the message (no recipient, or "
                    "cancelled by a pre-send hook)."
                )
        except DatabaseError:
            raise
        except Exception as error:
            notification.last_error = _describe(error)
            if is_transient_email_error(error):
                notification.save(update_fields=fields)
                _log(
                    notification,
                    audit.EMAIL_RETRYING,
                    attempt=notification.attempts,
                    error=notification.last_error[:DETAIL_MAX_LENGTH],
                )
                transient = TransientEmailError(
                    notification.pk, notification.last_error
                )
            else:
                notification.status = Notification.Status.FAILED
                notification.save(update_fields=[*fields, "status"])
                _log(
                    notification,
                    audit.EMAIL_FAILED,
                    attempt=notification.attempts,
                    error=notification.last_error[:DETAIL_MAX_LENGTH],
                )
                logger.warning(
                    "Notification %s failed permanently: %s",
                    notification.pk,
                    notification.last_error,
                )
        else:
            notification.status = Notification.Status.SENT
            notification.sent_at = now
            notification.times_sent += 1
            notification.last_error = ""
            notification.provider_message_id = _message_id(message)
            notification.save(
                update_fields=[
                    *fields,
                    "status",
                    "sent_at",
                    "times_sent",
                    "provider_message_id",
                ]
            )
            _log(
                notification,
                audit.EMAIL_SENT,
                to=notification.to_email,
                attempt=notification.attempts,
                provider_message_id=notification.provider_message_id,
            )
    if transient is not None:
        raise transient
    return notification


@transaction.atomic
def notification_mark_failed(
    *, notification_id: int, error: str
) -> Notification | None:
    """Give up on a pending notification (retries exhausted): status ``failed``.

    Support can resend it from the admin. Does nothing unless it is pending.
    """
    notification = _lock(notification_id)
    if notification is None or notification.status != Notification.Status.PENDING:
        return notification
    notification.status = Notification.Status.FAILED
    notification.last_error = (error or "Sending failed.")[:ERROR_MAX_LENGTH]
    notification.updated_at = timezone.now()
    notification.save(update_fields=["status", "last_error", "updated_at"])
    _log(
        notification,
        audit.EMAIL_FAILED,
        attempt=notification.attempts,
        error=notification.last_error[:DETAIL_MAX_LENGTH],
        gave_up=True,
    )
    return notification


@transaction.atomic
def notification_resend(*, actor: User, notification_id: int) -> Notification:
    """Send a decision email again, to the account's current contact details.

    The row goes back to ``pending`` (attempts, error and delivery status
    cleared) and the send task is queued after commit.
    """
    if not (actor and actor.is_active and actor.has_perm(RESEND)):
        raise PermissionRefused("Your role does not allow you to resend emails.")
    notification = _lock(notification_id)
    if notification is None:
        raise ActionRefused("That email does not exist any more; reload the page.")
    if notification.status == Notification.Status.PENDING:
        raise ActionRefused(
            f"The {notification.get_kind_display().lower()} email for "
            f"{notification.case.reference} is still waiting to be sent. Wait until "
            "it is sent or has failed before resending it.",
            code="pending",
        )
    account = notification.case.account
    previous = {
        "previous_status": notification.status,
        "previous_to": notification.to_email,
        "previous_delivery_status": notification.delivery_status,
    }
    notification.status = Notification.Status.PENDING
    notification.to_email = account.contact_email
    notification.to_name = account.contact_name
    notification.last_error = ""
    notification.attempts = 0
    # The old message's tracking events must not be read as the new one's.
    notification.provider_message_id = ""
    notification.delivery_status = ""
    notification.delivery_status_at = None
    notification.updated_at = timezone.now()
    notification.save(
        update_fields=[
            "status",
            "to_email",
            "to_name",
            "last_error",
            "attempts",
            "provider_message_id",
            "delivery_status",
            "delivery_status_at",
            "updated_at",
        ]
    )
    _log(
        notification,
        audit.EMAIL_RESEND_REQUESTED,
        actor=actor,
        to=notification.to_email,
        **previous,
    )
    from reviews import tasks

    enqueue_after_commit(tasks.notification_send, notification.pk)
    return notification


@transaction.atomic
def notification_record_delivery(
    *,
    provider_message_id: str,
    event_type: str,
    occurred_at: datetime | None,
    detail: str = "",
) -> Notification | None:
    """Record a provider tracking event (delivered, bounced, opened…) on its email.

    An event older than the one already stored is ignored (webhooks arrive out
    of order); an unknown message id is logged and ignored. Returns the updated
    notification, or None when nothing changed.
    """
    occurred_at = occurred_at or timezone.now()
    if timezone.is_naive(occurred_at):
        occurred_at = timezone.make_aware(occurred_at, UTC)
    notification = (
        Notification.objects.select_for_update(of=("self",))
        .select_related("case")
        .filter(provider_message_id=str(provider_message_id))
        .exclude(provider_message_id="")
        .order_by("-pk")
        .first()
    )
    if notification is None:
        logger.info(
            "Tracking event %r for unknown message id %r ignored",
            event_type,
            provider_message_id,
        )
        return None
    stored_at = notification.delivery_status_at
    if stored_at is not None and occurred_at < stored_at:
        logger.info(
            "Tracking event %r for notification %s is older than %r: ignored",
            event_type,
            notification.pk,
            notification.delivery_status,
        )
        return None
    previous = notification.delivery_status
    notification.delivery_status = str(event_type)[:32]
    notification.delivery_status_at = occurred_at
    notification.updated_at = timezone.now()
    notification.save(
        update_fields=["delivery_status", "delivery_status_at", "updated_at"]
    )
    _log(
        notification,
        audit.EMAIL_DELIVERY,
        event=notification.delivery_status,
        previous=previous,
        occurred_at=occurred_at.isoformat(),
        detail=(detail or "")[:DETAIL_MAX_LENGTH],
    )
    return notification


@transaction.atomic
def notifications_send_pending(*, now: datetime | None = None) -> list[int]:
    """Hand pending notifications nobody is working on to the send task again.

    Covers a dispatch lost after commit (broker down) and a worker that died.
    A row is due when it has been pending and untouched for
    ``NOTIFICATION_SWEEP_AFTER``; a row already being retried is given the
    longest retry backoff on top, so the sweeper does not start a second retry
    chain beside a live one. Rows being sent right now are locked and skipped.
    Returns the ids queued (after commit).
    """
    now = now or timezone.now()
    cutoff = now - settings.NOTIFICATION_SWEEP_AFTER
    retry_cutoff = cutoff - timedelta(seconds=settings.NOTIFICATION_RETRY_BACKOFF_MAX)
    due = list(
        Notification.objects.filter(
            status=Notification.Status.PENDING, created_at__lt=cutoff
        )
        .filter(
            Q(attempts=0, updated_at__lt=cutoff)
            | Q(attempts__gt=0, updated_at__lt=retry_cutoff)
        )
        .order_by("created_at")
        .select_for_update(skip_locked=True)
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    if not due:
        return []
    # Touched now: the next sweep leaves them alone while this dispatch runs.
    Notification.objects.filter(pk__in=due).update(updated_at=now)
    from reviews import tasks

    for notification_id in due:
        enqueue_after_commit(tasks.notification_send, notification_id)
    logger.info("Sweeper queued %d pending notification(s): %s", len(due), due)
    return due
