"""Service mode: PostgreSQL, Celery on Redis, an ESP through django-anymail."""

from .base import *  # noqa: F403
from .base import env

SECRET_KEY = env("DJANGO_SECRET_KEY")
DATABASES = {"default": env.db("DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", 60)
CELERY_BROKER_URL = env("REDIS_URL")
CELERY_TASK_ALWAYS_EAGER = False
PLATFORM_WEBHOOK_SECRET = env("PLATFORM_WEBHOOK_SECRET")
PLATFORM_API_TOKEN = env("PLATFORM_API_TOKEN")
# An ESP must be chosen: a forgotten variable must not "send" into files.
EMAIL_BACKEND = env("EMAIL_BACKEND")
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
