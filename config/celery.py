"""Celery application.

In the embedded default mode (no ``REDIS_URL``) settings make tasks run in-process,
right after the transaction that scheduled them commits; with ``REDIS_URL`` they go
to a worker through Redis.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("reviewdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
