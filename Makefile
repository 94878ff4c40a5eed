# Review Desk. `make run` serves the demo; `make test` runs the tests.
# Both bootstrap everything from the lock file on a machine with only python3 and make.

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV_PY := .venv/bin/python
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/reviewdesk
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: install run test web worker beat lint format bench bench-load bench-smoke clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.synced: pyproject.toml uv.lock | $(UV)
	UV_PYTHON=$(PYTHON) $(UV) sync --frozen --quiet
	touch $@

install: .venv/.synced

## The main job: migrate the embedded SQLite database, load the demo, print logins, serve.
run: install
	$(VENV_PY) manage.py migrate --no-input -v0
	$(VENV_PY) manage.py demo_setup
	$(VENV_PY) manage.py runserver 127.0.0.1:8000

## The tests, on this machine's PostgreSQL and Redis (override with DATABASE_URL / REDIS_URL).
test: install
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
		$(VENV_PY) -m pytest $(PYTEST_ARGS)

## Service mode processes (need DATABASE_URL, REDIS_URL and an ESP in the environment).
web: install
	DJANGO_SETTINGS_MODULE=config.settings.production .venv/bin/gunicorn config.wsgi --workers 2 --bind 127.0.0.1:8000

worker: install
	DJANGO_SETTINGS_MODULE=config.settings.production .venv/bin/celery -A config worker --loglevel INFO --concurrency 2

beat: install
	DJANGO_SETTINGS_MODULE=config.settings.production .venv/bin/celery -A config beat --loglevel INFO --schedule var/celerybeat-schedule

lint: install
	.venv/bin/ruff format --check .
	.venv/bin/ruff check .

format: install
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

## The million-case benchmark (issue 4): load once, then measure; results in bench/RESULTS.md.
BENCH_N ?= 1000000
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/reviewdesk_bench
BENCH_REDIS_URL ?= redis://127.0.0.1:6379/6

bench-load: install
	$(VENV_PY) bench/load.py --n $(BENCH_N) --database-url $(BENCH_DATABASE_URL)

bench: install
	$(VENV_PY) bench/run.py --database-url $(BENCH_DATABASE_URL) --redis-url $(BENCH_REDIS_URL)

bench-smoke: install
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
		$(VENV_PY) -m pytest tests/bench -q

clean:
	rm -rf .venv .tools var/reviewdesk.sqlite3 var/mail
