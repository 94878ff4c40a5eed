"""Indexes for the reviewer queue and its search on large tables.

- ``rd_case_open_queue_idx``: the default queue (open cases, oldest first) reads
  the head of this partial index instead of sorting every open case;
- ``rd_case_submitted_idx``: the queue filtered to "all" states or a
  non-state filter, oldest first, on a million cases;
- PostgreSQL only: ``pg_trgm`` and a trigram index on the upper-cased partner
  name, so "part of the partner's name" (``UPPER(name) LIKE '%…%'``, Django's
  ``icontains``) and the support lookup's name prefix are index scans. If the
  extension cannot be created (no privilege), name search still works, slower.

The indexes are created with SQL (not ``AddIndex``) because the models belong to
other work; the model state is unchanged, so ``makemigrations`` stays clean.
"""

from django.db import migrations, transaction

OPEN_STATES = "('queued', 'in_review', 'escalated')"
PORTABLE = [
    (
        "rd_case_open_queue_idx",
        "CREATE INDEX IF NOT EXISTS rd_case_open_queue_idx ON reviews_reviewcase "
        f"(submitted_at, id) WHERE state IN {OPEN_STATES}",
    ),
    (
        "rd_case_submitted_idx",
        "CREATE INDEX IF NOT EXISTS rd_case_submitted_idx ON reviews_reviewcase "
        "(submitted_at, id)",
    ),
]
TRIGRAM_INDEX = (
    "CREATE INDEX IF NOT EXISTS rd_account_name_trgm_idx ON accounts_developeraccount "
    "USING gin (UPPER(name) gin_trgm_ops)"
)


def create_indexes(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        for _name, sql in PORTABLE:
            cursor.execute(sql)
        if connection.vendor != "postgresql":
            return
        try:
            # A savepoint: a refused CREATE EXTENSION must not abort the migration.
            with transaction.atomic(using=connection.alias):
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except Exception:  # noqa: BLE001 - no privilege: keep the plain scan
            return
        cursor.execute(TRIGRAM_INDEX)


def drop_indexes(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        for name, _sql in PORTABLE:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")
        if connection.vendor == "postgresql":
            cursor.execute("DROP INDEX IF EXISTS rd_account_name_trgm_idx")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("reviews", "0002_seed_catalogue"),
    ]
    operations = [migrations.RunPython(create_indexes, drop_indexes, elidable=False)]
