"""Settings for the benchmark: the product's base settings plus a stock admin.

The stock ``ModelAdmin`` baseline (``bench/urls.py``) is mounted only here, at
``/stock/``; the product's admin stays at the site root exactly as in production.
Emails are handed to ``bench.email_backend.RecordingBackend``, which records the
hand-off time in Redis. Tasks go to a queue of the benchmark's own
(``BENCH_CELERY_QUEUE``) so that no other worker on the same Redis takes them.
"""

from config.settings.base import *  # noqa: F403
from config.settings.base import env

ROOT_URLCONF = "bench.urls"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
EMAIL_BACKEND = "bench.email_backend.RecordingBackend"
BENCH_REDIS_URL = env("BENCH_REDIS_URL", default=env("REDIS_URL", default=""))
CELERY_TASK_DEFAULT_QUEUE = env("BENCH_CELERY_QUEUE", default="bench")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
