"""Webhook-id receipts are kept long enough for redeliveries, then purged."""

from datetime import timedelta

import pytest
from django.utils import timezone

from reviews import services
from reviews.models import PlatformEventReceipt

pytestmark = pytest.mark.django_db


def _receipt(webhook_id: str, age: timedelta) -> PlatformEventReceipt:
    return PlatformEventReceipt.objects.create(
        webhook_id=webhook_id,
        response_status=202,
        response_body={},
        received_at=timezone.now() - age,
    )


def test_only_receipts_past_the_retention_are_purged(settings):
    settings.PLATFORM_EVENT_RECEIPT_RETENTION = timedelta(days=30)
    _receipt("msg_old", timedelta(days=31))
    _receipt("msg_recent", timedelta(days=29))
    _receipt("msg_now", timedelta(0))

    assert services.platform_event_receipts_purge() == 1

    assert set(PlatformEventReceipt.objects.values_list("webhook_id", flat=True)) == {
        "msg_recent",
        "msg_now",
    }
    assert services.platform_event_receipts_purge() == 0


def test_the_purge_is_on_the_beat_schedule(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "reviews.tasks.platform_event_receipts_purge" in tasks
