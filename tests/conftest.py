"""Shared fixtures.

Service-dependent tests carry ``@pytest.mark.postgres`` or ``@pytest.mark.redis``.
Without the service they are skipped locally; with ``CI=true`` they fail instead,
so a CI run can never pass with them silently skipped.
"""

from __future__ import annotations

import importlib
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


def pytest_runtest_setup(item: pytest.Item) -> None:
    missing = _missing_service(item)
    if missing:
        if IN_CI:
            pytest.fail(f"CI requires this service-dependent test to run: {missing}")
        pytest.skip(missing)


def _is_transactional(item: pytest.Item) -> bool:
    marker = item.get_closest_marker("django_db")
    fixtures = getattr(item, "fixturenames", ())
    return bool(marker is not None and marker.kwargs.get("transaction")) or (
        "live_server" in fixtures or "transactional_db" in fixtures
    )


def ensure_reference_data() -> None:
    """Re-create what the data migrations made: role groups, criteria, reasons.

    A transactional test (``transaction=True``, every live_server test) ends with a
    flush that empties every table. Serialized rollback should restore the data, but
    it is skipped when the test's connection is not the one the data was serialized
    on (e.g. once Playwright runs an event loop in the test thread), so transactional
    tests re-seed idempotently from the migrations' own code instead.
    """
    from django.apps import apps
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group, Permission

    from reviews.models import Criterion

    if Group.objects.exists() and Criterion.objects.exists():
        return
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0)
    roles = importlib.import_module("accounts.migrations.0002_roles")
    for role, names in roles.ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(
            [
                Permission.objects.get(
                    content_type__app_label=name.split(".")[0],
                    codename=name.split(".")[1],
                )
                for name in names
            ]
        )
    importlib.import_module("reviews.migrations.0002_seed_catalogue").seed(apps, None)


@pytest.fixture(autouse=True)
def _reference_data(request: pytest.FixtureRequest) -> None:
    if _is_transactional(request.node):
        request.getfixturevalue("transactional_db")
        ensure_reference_data()


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
