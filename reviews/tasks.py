"""Thin, idempotent tasks: take ids, reload, call a service."""

from celery import shared_task

from reviews import services


@shared_task(name="reviews.tasks.review_cases_release_stale")
def review_cases_release_stale() -> int:
    return len(services.review_cases_release_stale())


@shared_task(name="reviews.tasks.notification_send")
def notification_send(notification_id: int) -> None:
    # Placeholder until the email outbox lands (issue 2, part 5).
    return None
