"""Load N production-shaped review cases into PostgreSQL, fast.

    .venv/bin/python bench/load.py --n 1000000 \\
        --database-url postgres://postgres@127.0.0.1:5432/reviewdesk_bench

Creates the database if needed, migrates it, creates the benchmark's staff
(``*@bench.example``), empties the case tables and loads them with ``COPY``: one
connection per table streams while the rows are generated (``bench/datagen.py``),
``COPY … FREEZE`` into freshly truncated tables. From 50,000 cases up, secondary
indexes and foreign keys are dropped for the load and rebuilt afterwards (the
foreign keys are validated then); their definitions are kept in ``bench/data/``
until they are back, so an interrupted load is repaired by the next one. Ends with
``VACUUM ANALYZE`` (``ANALYZE`` for small loads).
Deterministic: the same ``--n``/``--seed``/``--now`` give the same rows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATA_DIR = ROOT / "bench" / "data"
BULK_THRESHOLD = 50_000
PASSWORD = "bench-password"

# (email local part, full name, role) — the benchmark's staff.
STAFF = (
    [(f"reviewer{i:02d}", f"Reviewer {i:02d}", "Reviewer") for i in range(1, 21)]
    + [(f"senior{i:02d}", f"Senior {i:02d}", "Senior reviewer") for i in range(1, 4)]
    + [("support01", "Support 01", "Support"), ("admin01", "Admin 01", "Admin")]
    + [(f"claimer{i:02d}", f"Claimer {i:02d}", "Reviewer") for i in range(1, 51)]
    + [("decider01", "Decider 01", "Reviewer")]
)


def staff_email(local: str) -> str:
    return f"{local}@bench.example"


def log(message: str, *, quiet: bool = False) -> None:
    if not quiet:
        print(message, flush=True)


def setup_django(database_url: str) -> None:
    """Point Django (bench settings) at ``database_url`` and set it up."""
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    import django

    django.setup()


def conninfo() -> str:
    """libpq connection string of Django's default database."""
    from django.db import connection

    params = connection.get_connection_params()
    parts = {
        "dbname": params.get("dbname") or connection.settings_dict["NAME"],
        "host": params.get("host"),
        "port": params.get("port"),
        "user": params.get("user"),
        "password": params.get("password"),
    }
    return " ".join(f"{k}={v}" for k, v in parts.items() if v not in (None, ""))


def create_database(database_url: str) -> None:
    import environ
    import psycopg

    config = environ.Env.db_url_config(database_url)
    maintenance = psycopg.connect(
        dbname="postgres",
        host=config.get("HOST") or None,
        port=config.get("PORT") or None,
        user=config.get("USER") or None,
        password=config.get("PASSWORD") or None,
        autocommit=True,
    )
    with maintenance:
        exists = maintenance.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]]
        ).fetchone()
        if not exists:
            maintenance.execute(f'CREATE DATABASE "{config["NAME"]}"')


def ensure_staff():
    """The benchmark's users, one per role plus reviewers for the claim processes."""
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group

    from accounts.models import User
    from bench.datagen import Staff

    password = make_password(PASSWORD)
    groups = {group.name: group for group in Group.objects.all()}
    ids: dict[str, int] = {}
    for local, full_name, role in STAFF:
        user, created = User.objects.get_or_create(
            email=staff_email(local),
            defaults={"full_name": full_name, "password": password, "is_staff": True},
        )
        if created:
            user.groups.add(groups[role])
        ids[local] = user.pk
    return Staff(
        reviewers=tuple(ids[f"reviewer{i:02d}"] for i in range(1, 21)),
        seniors=tuple(ids[f"senior{i:02d}"] for i in range(1, 4)),
        main_reviewer=ids["reviewer01"],
    )


# --- dropping and restoring indexes and foreign keys --------------------------


def _capture_ddl(cursor, table_names: list[str]) -> dict:
    indexes = cursor.execute(
        """
        SELECT index_class.relname, pg_get_indexdef(ix.indexrelid),
               pg_relation_size(ix.indrelid)
        FROM pg_index ix
        JOIN pg_class index_class ON index_class.oid = ix.indexrelid
        JOIN pg_class table_class ON table_class.oid = ix.indrelid
        WHERE table_class.relname = ANY(%s)
          AND NOT ix.indisunique AND NOT ix.indisprimary
        """,
        [table_names],
    ).fetchall()
    foreign_keys = cursor.execute(
        """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint
        WHERE contype = 'f'
          AND (conrelid::regclass::text = ANY(%s)
               OR confrelid::regclass::text = ANY(%s))
        """,
        [table_names, table_names],
    ).fetchall()
    return {
        "indexes": [[name, sql, size] for name, sql, size in indexes],
        "foreign_keys": [list(row) for row in foreign_keys],
    }


def _restore_indexes(info: str, indexes: list, quiet: bool) -> None:
    import psycopg

    def build(item):
        name, sql, _size = item
        started = time.monotonic()
        with psycopg.connect(info, autocommit=True) as conn:
            conn.execute("SET maintenance_work_mem = '512MB'")
            conn.execute(sql.replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1))
        return name, time.monotonic() - started

    # Biggest tables first, two at a time: one per core.
    ordered = sorted(indexes, key=lambda item: -item[2])
    with ThreadPoolExecutor(max_workers=2) as pool:
        for name, seconds in pool.map(build, ordered):
            log(f"  index {name}: {seconds:.1f} s", quiet=quiet)


def _restore_foreign_keys(cursor, foreign_keys: list, quiet: bool) -> None:
    existing = {
        row[0]
        for row in cursor.execute(
            "SELECT conname FROM pg_constraint WHERE contype = 'f'"
        ).fetchall()
    }
    for table, name, definition in foreign_keys:
        if name in existing:
            continue
        started = time.monotonic()
        # Adding the constraint validates every row against the referenced table.
        cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        log(f"  foreign key {name}: {time.monotonic() - started:.1f} s", quiet=quiet)


# --- the load -----------------------------------------------------------------


def load(
    *,
    n: int,
    seed: int = 42,
    now: float | None = None,
    quiet: bool = False,
) -> dict[str, int]:
    """Replace the case data of Django's default database with ``n`` cases."""
    import psycopg
    from django.db import connection

    from bench.datagen import TABLE_ORDER, Bases, Catalogue, CopySink, Generator, tables

    staff = ensure_staff()
    catalogue = Catalogue.from_db()
    table_map = tables()
    names = [table_map[key].name for key in TABLE_ORDER]
    info = conninfo()
    database = connection.settings_dict["NAME"]
    connection.close()
    now = now if now is not None else float(int(time.time() // 60 * 60))

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    ddl_file = DATA_DIR / f"ddl-{database}.json"
    # Dropping and rebuilding indexes pays off only for big loads.
    bulk = n >= BULK_THRESHOLD or ddl_file.exists()
    started = time.monotonic()
    with psycopg.connect(info, autocommit=True) as admin:
        cursor = admin.cursor()
        if not bulk:
            ddl = {"indexes": [], "foreign_keys": []}
        elif ddl_file.exists():
            log(
                f"Restoring the indexes of an interrupted load ({ddl_file})",
                quiet=quiet,
            )
            ddl = json.loads(ddl_file.read_text())
        else:
            ddl = _capture_ddl(cursor, names)
            ddl_file.write_text(json.dumps(ddl, indent=1))
        log(f"Emptying {', '.join(names)}", quiet=quiet)
        cursor.execute(
            "TRUNCATE "
            + ", ".join(f'"{name}"' for name in names)
            + ', "reviews_platformeventreceipt" RESTART IDENTITY CASCADE'
        )
        for table, name, _definition in ddl["foreign_keys"]:
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT IF EXISTS "{name}"')
        for name, _sql, _size in ddl["indexes"]:
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')

    def progress(done: int, total: int) -> None:
        seconds = time.monotonic() - started
        log(
            f"  cases {done:>9,}/{total:,} ({100 * done // total:3d}%)"
            f" {seconds:6.1f} s",
            quiet=quiet,
        )

    log(f"Generating and copying {n:,} cases (seed {seed})", quiet=quiet)
    # Without foreign keys each table is truncated again inside its COPY's
    # transaction (COPY FREEZE); with them the sinks commit in dependency order.
    sinks = {key: CopySink(info, table_map[key], truncate=bulk) for key in TABLE_ORDER}
    try:
        counts = Generator(
            n=n,
            seed=seed,
            now=now,
            catalogue=catalogue,
            staff=staff,
            bases=Bases(),
            progress=progress,
        ).run(sinks)
        for key in TABLE_ORDER:
            sinks[key].close()
    except BaseException:
        for sink in sinks.values():
            sink.abort()
        raise
    copied = time.monotonic()
    log(
        "Copied "
        + ", ".join(f"{table_map[k].name}={counts[k]:,}" for k in TABLE_ORDER)
        + f" in {copied - started:.0f} s",
        quiet=quiet,
    )

    if bulk:
        log("Rebuilding indexes", quiet=quiet)
        _restore_indexes(info, ddl["indexes"], quiet)
    with psycopg.connect(info, autocommit=True) as admin:
        cursor = admin.cursor()
        if bulk:
            log("Restoring and validating foreign keys", quiet=quiet)
            _restore_foreign_keys(cursor, ddl["foreign_keys"], quiet)
            ddl_file.unlink()
        for name in names:
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('\"{name}\"', 'id'), "
                f'coalesce(max(id), 1), max(id) IS NOT NULL) FROM "{name}"'
            )
        log("VACUUM ANALYZE" if bulk else "ANALYZE", quiet=quiet)
        cursor.execute("SET maintenance_work_mem = '512MB'")
        for name in [*names, "accounts_user"]:
            cursor.execute(f'{"VACUUM (ANALYZE)" if bulk else "ANALYZE"} "{name}"')
    log(f"Done in {time.monotonic() - started:.0f} s", quiet=quiet)
    return counts


def load_in_transaction(*, n: int, seed: int = 42, now: float | None = None) -> dict:
    """Add ``n`` cases through Django's own connection, inside the caller's
    transaction (tests): no truncation, indexes kept, then ``ANALYZE``."""
    from django.db import connection

    from bench.datagen import TABLE_ORDER, BufferSink, Catalogue, Generator, tables
    from bench.scratch import next_ids

    staff = ensure_staff()
    table_map = tables()
    sinks = {key: BufferSink(table_map[key]) for key in TABLE_ORDER}
    with connection.cursor() as cursor:
        counts = Generator(
            n=n,
            seed=seed,
            now=now if now is not None else time.time(),
            catalogue=Catalogue.from_db(),
            staff=staff,
            bases=next_ids(cursor),
        ).run(sinks)
        for key in TABLE_ORDER:
            name = table_map[key].name
            sinks[key].copy_into(cursor.cursor)
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('\"{name}\"', 'id'), "
                f'coalesce(max(id), 1), max(id) IS NOT NULL) FROM "{name}"'
            )
            cursor.execute(f'ANALYZE "{name}"')
        cursor.execute('ANALYZE "accounts_user"')
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="review cases")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/reviewdesk_bench"
        ),
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--now",
        help="ISO time the data is relative to (default: this minute)",
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("--database-url must name a PostgreSQL database")
    create_database(args.database_url)
    setup_django(args.database_url)
    from django.core.management import call_command

    log("Migrating", quiet=args.quiet)
    call_command("migrate", verbosity=0, interactive=False)
    now = None
    if args.now:
        moment = datetime.fromisoformat(args.now)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        now = moment.timestamp()
    load(n=args.n, seed=args.seed, now=now, quiet=args.quiet)


if __name__ == "__main__":
    main()
