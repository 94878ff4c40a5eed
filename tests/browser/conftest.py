"""Real-browser tests: Playwright driving Debian's chromium against live_server.

Screenshots go to tests/artifacts/screenshots/ (kept out of git).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")

# Playwright's sync API runs an event loop in this thread; Django's ORM must be
# allowed to run in the same test thread.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"chromium not found at {CHROMIUM}: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def screenshot(page):
    """``screenshot("name")`` saves the page under tests/artifacts/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


def login(page, live_server, email: str, password: str = "pw") -> None:
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", password)
    page.click("input[type=submit], button[type=submit]")


# --- serialized rollback across Playwright -------------------------------------------
# Once Playwright's sync API runs, an event loop is "running" in the test thread, so
# Django's per-context connection storage hands the test a fresh connection object
# that lacks ``_test_serialized_contents``. Tests marked
# ``django_db(transaction=True, serialized_rollback=True)`` would then lose the
# migration-seeded rows (roles, criteria, denial reasons) after the first flush.
# These fixtures put the serialized contents back on whichever connection is current.


@pytest.fixture(scope="session")
def _serialized_db_contents(django_db_setup):
    from django.db import connections

    return {
        alias: connections[alias]._test_serialized_contents
        for alias in connections
        if hasattr(connections[alias], "_test_serialized_contents")
    }


@pytest.fixture(autouse=True)
def _serialized_rollback_survives_playwright(_serialized_db_contents):
    def attach() -> None:
        from django.db import connections

        for alias, contents in _serialized_db_contents.items():
            if not hasattr(connections[alias], "_test_serialized_contents"):
                connections[alias]._test_serialized_contents = contents

    attach()
    yield
    # Before pytest-django's flush: with the contents attached, the flush skips
    # post_migrate and the next test's setup restores the seeded rows.
    attach()
