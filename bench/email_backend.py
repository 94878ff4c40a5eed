"""An email backend for the benchmark: records when each message is handed over.

Built on anymail's test backend, so code that reads ``message.anymail_status``
(the provider's message id) behaves as with a real ESP. Nothing leaves the
machine. For every recipient the hand-off time (``time.time()``) goes into the
Redis hash ``bench:<run>:handoff`` (``BENCH_RUN_ID``) on ``BENCH_REDIS_URL``.
"""

from __future__ import annotations

import os
import time
import uuid

from anymail.backends.test import EmailBackend as AnymailTestBackend
from django.conf import settings
from django.core import mail


def handoff_key(run_id: str) -> str:
    return f"bench:{run_id}:handoff"


class RecordingBackend(AnymailTestBackend):
    esp_name = "Bench"
    _redis = None

    def get_esp_message_id(self, message) -> str:
        return f"bench-{uuid.uuid4().hex}"

    def post_to_esp(self, payload, message):
        response = super().post_to_esp(payload, message)
        handed_at = time.time()
        # Keep nothing in memory: the worker runs for a while.
        mail.outbox.clear()
        url = getattr(settings, "BENCH_REDIS_URL", "") or os.environ.get(
            "BENCH_REDIS_URL", ""
        )
        if url:
            if RecordingBackend._redis is None:
                import redis

                RecordingBackend._redis = redis.Redis.from_url(url)
            key = handoff_key(os.environ.get("BENCH_RUN_ID", "default"))
            # The first hand-off counts: a resend does not move it.
            for email in payload.recipient_emails:
                RecordingBackend._redis.hsetnx(key, email.lower(), repr(handed_at))
        return response
