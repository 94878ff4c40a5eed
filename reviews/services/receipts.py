"""Retention of platform-event receipts (the webhook-id idempotency records)."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.utils import timezone

from reviews.models import PlatformEventReceipt


def platform_event_receipts_purge(*, now: datetime | None = None) -> int:
    """Delete receipts older than ``PLATFORM_EVENT_RECEIPT_RETENTION``; return how many.

    A redelivery is only accepted within the 5-minute signature tolerance, so a
    receipt kept for weeks answers every legitimate retry; without a purge the table
    grows with every event forever. Deletes in batches to keep transactions short.
    """
    cutoff = (now or timezone.now()) - settings.PLATFORM_EVENT_RECEIPT_RETENTION
    deleted = 0
    while True:
        batch = list(
            PlatformEventReceipt.objects.filter(received_at__lt=cutoff)
            .order_by("id")
            .values_list("id", flat=True)[:5000]
        )
        if not batch:
            return deleted
        deleted += PlatformEventReceipt.objects.filter(id__in=batch).delete()[0]
