"""Shared fixtures.

Service-dependent tests carry ``@pytest.mark.postgres`` or ``@pytest.mark.redis``.
Without the service they are skipped locally; with ``CI=true`` they fail instead,
so a CI run can never pass with them silently skipped.
"""

from __future__ import annotations

import os

import pytest
from django.db import connection

from tests.factories import make_user

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _redis_available() -> bool:
    url = os.environ.get("REDIS_URL")
    if not url:
        return False
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception:
        return False
    return True


def _missing_service(item: pytest.Item) -> str | None:
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        return "needs PostgreSQL: set DATABASE_URL=postgres://…"
    if item.get_closest_marker("redis") and not _redis_available():
        return "needs Redis and a Celery worker: set REDIS_URL=redis://…"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Transactional tests restore the migrated reference data after a flush.

    A ``transaction=True`` test (and every live_server test) ends by flushing the
    database, which would drop the role groups, criteria and denial reasons that data
    migrations created; serialized rollback puts them back for the next test.
    """
    for item in items:
        marker = item.get_closest_marker("django_db")
        fixtures = getattr(item, "fixturenames", ())
        transactional = (marker is not None and marker.kwargs.get("transaction")) or (
            "live_server" in fixtures or "transactional_db" in fixtures
        )
        if transactional and not (marker and marker.kwargs.get("serialized_rollback")):
            kwargs = dict(marker.kwargs) if marker else {}
            kwargs.update(transaction=True, serialized_rollback=True)
            item.add_marker(pytest.mark.django_db(**kwargs), append=False)


def pytest_runtest_setup(item: pytest.Item) -> None:
    missing = _missing_service(item)
    if missing:
        if IN_CI:
            pytest.fail(f"CI requires this service-dependent test to run: {missing}")
        pytest.skip(missing)


@pytest.fixture
def reviewer(db):
    return make_user("Reviewer", "reviewer@staff.example", "Rita Reviewer")


@pytest.fixture
def reviewer2(db):
    return make_user("Reviewer", "reviewer2@staff.example", "Rob Reviewer")


@pytest.fixture
def senior(db):
    return make_user("Senior reviewer", "senior@staff.example", "Sue Senior")


@pytest.fixture
def support(db):
    return make_user("Support", "support@staff.example", "Stan Support")


@pytest.fixture
def admin_user(db):
    return make_user("Admin", "admin@staff.example", "Ada Admin")


@pytest.fixture(autouse=True)
def _anymail_test_backend(settings):
    """Use anymail's test ESP (config/settings/test.py) in every test.

    Django's test environment swaps EMAIL_BACKEND for locmem; anymail's test
    backend also fills ``mail.outbox`` but behaves like a real ESP backend
    (``anymail_status``, message ids, anymail errors).
    """
    from config.settings import test as test_settings

    settings.EMAIL_BACKEND = test_settings.EMAIL_BACKEND


@pytest.fixture
def outbox():
    """Messages handed to the email backend (anymail's test backend)."""
    from django.core import mail

    mail.outbox = []
    return mail.outbox
