"""Thin, idempotent tasks: take ids, reload, call a service.

``notification_send`` retries a transient provider error with exponential backoff
and jitter, capped at ``NOTIFICATION_RETRY_BACKOFF_MAX`` seconds. The cap must stay
well under the Redis ``visibility_timeout`` (3600 s): a message held unacked for
longer is handed to a second worker.
"""

from __future__ import annotations

import logging
import random

from celery import shared_task
from django.conf import settings

from reviews import services

logger = logging.getLogger(__name__)

# First retry after about this many seconds; doubles each time up to the cap.
RETRY_BACKOFF_BASE_SECONDS = 30


def retry_countdown(retries: int) -> float:
    """Seconds before retry number ``retries + 1``: exponential, capped, jittered.

    "Equal jitter": half the backoff plus a random part of the other half, so
    retries of many emails after one provider outage do not arrive together.
    """
    cap = settings.NOTIFICATION_RETRY_BACKOFF_MAX
    backoff = min(cap, RETRY_BACKOFF_BASE_SECONDS * 2**retries)
    return backoff / 2 + random.uniform(0, backoff / 2)


@shared_task(name="reviews.tasks.notification_send", bind=True, acks_late=True)
def notification_send(self, notification_id: int) -> None:
    """Send one notification; retry transient provider errors, then give up."""
    try:
        services.notification_send(notification_id=notification_id)
    except services.TransientEmailError as error:
        max_retries = settings.NOTIFICATION_MAX_RETRIES
        if self.request.retries >= max_retries:
            services.notification_mark_failed(
                notification_id=notification_id,
                error=(
                    f"Gave up after {self.request.retries + 1} tries: {error.error}"
                ),
            )
            return
        countdown = retry_countdown(self.request.retries)
        logger.info(
            "Notification %s: transient error, retry %d/%d in %.1f s",
            notification_id,
            self.request.retries + 1,
            max_retries,
            countdown,
        )
        raise self.retry(
            exc=error, countdown=countdown, max_retries=max_retries
        ) from error


@shared_task(name="reviews.tasks.notifications_send_pending", acks_late=True)
def notifications_send_pending() -> int:
    """Periodic: queue pending notifications whose dispatch was lost."""
    return len(services.notifications_send_pending())


@shared_task(name="reviews.tasks.review_cases_release_stale", acks_late=True)
def review_cases_release_stale() -> int:
    """Periodic: return claims past their lease to the queue."""
    return len(services.review_cases_release_stale())


@shared_task(name="reviews.tasks.platform_event_receipts_purge", acks_late=True)
def platform_event_receipts_purge() -> int:
    return services.platform_event_receipts_purge()
