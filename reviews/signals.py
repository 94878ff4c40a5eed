"""Signal receivers: the ESP's tracking webhooks update the delivery status.

anymail receives the provider's webhook at ``/anymail/<esp>/tracking/`` (HTTP basic
auth with ``ANYMAIL["WEBHOOK_SECRET"]``), normalises it and sends ``tracking``.
"""

from __future__ import annotations

import logging

from anymail.signals import AnymailTrackingEvent, tracking
from django.dispatch import receiver

logger = logging.getLogger(__name__)


@receiver(tracking, dispatch_uid="reviews.notification_record_delivery")
def record_email_tracking(
    sender, event: AnymailTrackingEvent, esp_name: str, **kwargs
) -> None:
    from reviews import services

    if not event.message_id:
        logger.info(
            "%s tracking event %r without a message id ignored",
            esp_name,
            event.event_type,
        )
        return
    detail = " ".join(
        str(part)
        for part in (event.reject_reason, event.description, event.mta_response)
        if part
    )
    services.notification_record_delivery(
        provider_message_id=str(event.message_id),
        event_type=event.event_type,
        occurred_at=event.timestamp,
        detail=detail,
    )
