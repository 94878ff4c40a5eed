"""Embedded mode has no Celery beat: run the periodic jobs inline, once a minute."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)


class EmbeddedBeatMiddleware:
    """After a response, run each ``CELERY_BEAT_SCHEDULE`` task if a minute passed.

    Only for the single-process embedded mode (``make run``): there the stale-claim
    sweep and the pending-email sweep would otherwise never run. Service mode runs
    ``celery beat`` instead and does not install this middleware.
    """

    interval_seconds = 60.0

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._due = time.monotonic() + self.interval_seconds
        self._lock = threading.Lock()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if time.monotonic() >= self._due and self._lock.acquire(blocking=False):
            try:
                self._due = time.monotonic() + self.interval_seconds
                self.run_periodic_tasks()
            finally:
                self._lock.release()
        return response

    @staticmethod
    def run_periodic_tasks() -> None:
        from config.celery import app

        app.loader.import_default_modules()  # the task modules (autodiscovery)
        for entry in settings.CELERY_BEAT_SCHEDULE.values():
            try:
                app.tasks[entry["task"]].apply()
            except Exception:
                logger.exception("periodic task %s failed", entry["task"])
