"""pytest settings: the embedded database unless DATABASE_URL names PostgreSQL.

Tasks run eagerly after commit here; tests of task delivery switch that off and
start a real worker on Redis (tests/conftest.py).
"""

from .base import *  # noqa: F403
from .base import env

SECRET_KEY = "test-secret-key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_BROKER_URL = env("REDIS_URL", default="memory://")
PLATFORM_WEBHOOK_SECRET = "whsec_dGVzdC1zZWNyZXQtZm9yLXJldmlldy1kZXNr"
PLATFORM_API_TOKEN = "test-platform-token"
NOTIFICATION_RETRY_BACKOFF_MAX = 2
