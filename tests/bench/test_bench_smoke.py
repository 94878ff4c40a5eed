"""The benchmark runs end to end on a tiny data set, so it never rots.

Loads 300 cases into a database of its own with ``bench/load.py`` and runs
``bench/run.py --quick`` against it (pages and stock admin, claim-next processes,
gunicorn with the load generator, a real Celery worker on Redis). Asserts only
that both commands complete and write their results: no timing assertions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def _smoke_database() -> tuple[str, dict]:
    settings = connection.settings_dict
    name = f"{settings['NAME'].removeprefix('test_')}_bench_smoke"
    params = {
        "host": settings["HOST"] or "127.0.0.1",
        "port": settings["PORT"] or 5432,
        "user": settings["USER"] or "postgres",
        "password": settings["PASSWORD"] or "",
    }
    auth = params["user"] + (f":{params['password']}" if params["password"] else "")
    url = f"postgres://{auth}@{params['host']}:{params['port']}/{name}"
    return url, {**params, "name": name}


def _drop(params: dict) -> None:
    with psycopg.connect(
        dbname="postgres",
        host=params["host"],
        port=params["port"],
        user=params["user"],
        password=params["password"] or None,
        autocommit=True,
    ) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{params["name"]}" WITH (FORCE)')


def _run(*command: str) -> subprocess.CompletedProcess:
    finished = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    return finished


def test_loader_and_measurement_run_end_to_end(tmp_path):
    url, params = _smoke_database()
    _drop(params)
    try:
        loaded = _run("bench/load.py", "--n", "300", "--database-url", url)
        assert "Done in" in loaded.stdout

        output, raw = tmp_path / "RESULTS.md", tmp_path / "results.json"
        _run(
            "bench/run.py",
            "--quick",
            "--claim-k",
            "2",
            "--database-url",
            url,
            "--redis-url",
            os.environ["REDIS_URL"],
            "--output",
            str(output),
            "--json",
            str(raw),
        )
    finally:
        _drop(params)

    results = json.loads(raw.read_text())
    assert results["errors"] == {}
    assert results["machine"]["counts"]["reviews_reviewcase"] == 300
    text = output.read_text()
    for row in (
        "| queue: unfiltered |",
        "| queue: search: case reference |",
        "| case page: long history",
        "| support lookup by email |",
        "| claim next, K=2 |",
        "| key status GET /api/v1/keys/<id>",
        "| signed intake POST /api/v1/platform-events",
        "| decision → email handed to the backend |",
    ):
        assert row in text, row
