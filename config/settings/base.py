"""Settings shared by every mode. Secrets come only from the environment.

Two runtime modes (DESIGN §5):
- embedded default: no environment at all -> SQLite under var/, Celery tasks run
  in-process right after commit, emails captured under var/mail and in the outbox;
- service mode: DATABASE_URL (PostgreSQL), REDIS_URL (Celery broker) and an
  anymail ESP (EMAIL_BACKEND + ANYMAIL_* variables).
"""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="embedded-only-insecure-key-change-me")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "anymail",
    "accounts",
    "reviews",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db(
        "DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'reviewdesk.sqlite3'}"
    )
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers wait for each other instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", 60))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "admin:login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# --- Celery -----------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
else:
    # Embedded mode: the after-commit hook runs the task in this process.
    CELERY_BROKER_URL = "memory://localhost/"
    CELERY_TASK_ALWAYS_EAGER = True
    CELERY_TASK_EAGER_PROPAGATES = False
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Retries back off to at most NOTIFICATION_RETRY_BACKOFF_MAX seconds, far below this.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "send-pending-notifications": {
        "task": "reviews.tasks.notifications_send_pending",
        "schedule": timedelta(seconds=60),
    },
    "release-stale-claims": {
        "task": "reviews.tasks.review_cases_release_stale",
        "schedule": timedelta(seconds=60),
    },
    "purge-old-event-receipts": {
        "task": "reviews.tasks.platform_event_receipts_purge",
        "schedule": timedelta(hours=6),
    },
}

# --- Email ------------------------------------------------------------------------
EMAIL_BACKEND = env(
    "EMAIL_BACKEND", default="django.core.mail.backends.filebased.EmailBackend"
)
EMAIL_FILE_PATH = VAR_DIR / "mail"
ANYMAIL = {
    key.removeprefix("ANYMAIL_"): value
    for key, value in env.ENVIRON.items()
    if key.startswith("ANYMAIL_")
}
DEFAULT_FROM_EMAIL = env(
    "DEFAULT_FROM_EMAIL", default="Review Desk <no-reply@reviewdesk.example>"
)
SUPPORT_EMAIL = env("SUPPORT_EMAIL", default="technical-support@platform.example")
SUPPORT_URL = env("SUPPORT_URL", default="https://support.platform.example")
# A pending notification older than this is handed to the sender again by the sweeper.
NOTIFICATION_SWEEP_AFTER = timedelta(
    seconds=env.int("NOTIFICATION_SWEEP_AFTER_SECONDS", 120)
)
NOTIFICATION_MAX_RETRIES = env.int("NOTIFICATION_MAX_RETRIES", 5)
NOTIFICATION_RETRY_BACKOFF_MAX = env.int("NOTIFICATION_RETRY_BACKOFF_MAX", 300)

# --- Platform contract (DESIGN §6) ---------------------------------------------------
PLATFORM_WEBHOOK_SECRET = env(
    "PLATFORM_WEBHOOK_SECRET",
    default="whsec_ZW1iZWRkZWQtZGVtby1zZWNyZXQtbm90LWZvci1wcm9k",
)
PLATFORM_API_TOKEN = env("PLATFORM_API_TOKEN", default="embedded-demo-token")
PLATFORM_EVENT_MAX_BYTES = env.int("PLATFORM_EVENT_MAX_BYTES", 64 * 1024)
PLATFORM_WEBHOOK_TOLERANCE_SECONDS = 300
# Webhook-id receipts older than this are purged (redeliveries come within minutes).
PLATFORM_EVENT_RECEIPT_RETENTION = timedelta(
    days=env.int("PLATFORM_EVENT_RECEIPT_RETENTION_DAYS", 30)
)

# --- Review process -------------------------------------------------------------------
# A claim untouched for longer than this goes back to the queue (periodic task).
REVIEW_CLAIM_LEASE = timedelta(minutes=env.int("REVIEW_CLAIM_LEASE_MINUTES", 30))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
if not REDIS_URL:
    # Embedded mode runs every task inline: one log line per email is noise there.
    LOGGING["loggers"]["celery.app.trace"] = {"level": "WARNING"}
