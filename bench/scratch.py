"""Extra queued cases for the benchmark's writes, and their removal.

Claims, decisions and the signed intake change data. They work on cases the
benchmark adds for the purpose (tagged keys ``pk_<tag>_…``, partners
``acct_<tag>_…``, webhook ids ``msg_<tag>_…``) and remove afterwards, so the
loaded data set is the same for every run.
"""

from __future__ import annotations

from django.db import connection, transaction

from bench.datagen import (
    TABLE_ORDER,
    Bases,
    BufferSink,
    Catalogue,
    queued_batch,
    tables,
)


def next_ids(cursor) -> Bases:
    """The next free id of every table the generator writes."""
    table_map = tables()
    bases = Bases()
    for key in TABLE_ORDER:
        cursor.execute(f'SELECT coalesce(max(id), 0) + 1 FROM "{table_map[key].name}"')
        setattr(bases, key, cursor.fetchone()[0])
    return bases


def add_queued_cases(*, tag: str, count: int, before_queue: bool = True) -> list[int]:
    """Add ``count`` queued cases (one partner each) and return their ids, oldest first.

    With ``before_queue`` they are submitted just before the oldest queued case,
    so "claim next" takes them first and leaves the loaded queue alone.
    """
    from reviews.models import ReviewCase

    catalogue = Catalogue.from_db()
    table_map = tables()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("LOCK TABLE reviews_reviewcase IN SHARE ROW EXCLUSIVE MODE")
        bases = next_ids(cursor)
        first_case = bases.case
        cursor.execute(
            "SELECT extract(epoch FROM min(submitted_at)) FROM reviews_reviewcase "
            "WHERE state = 'queued'"
        )
        oldest = cursor.fetchone()[0]
        if oldest is None or not before_queue:
            cursor.execute("SELECT extract(epoch FROM now())")
            start = float(cursor.fetchone()[0]) - count / 1000 - 60
        else:
            start = float(oldest) - count / 1000 - 3600
        sinks = {key: BufferSink(table_map[key]) for key in TABLE_ORDER}
        queued_batch(
            sinks,
            count=count,
            first_submitted=start,
            tag=tag,
            catalogue=catalogue,
            bases=bases,
        )
        for key in TABLE_ORDER:
            if sinks[key].rows:
                sinks[key].copy_into(cursor.cursor)
        for key in TABLE_ORDER:
            name = table_map[key].name
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('\"{name}\"', 'id'), "
                f'coalesce(max(id), 1), max(id) IS NOT NULL) FROM "{name}"'
            )
    return list(
        ReviewCase.objects.filter(pk__gte=first_case, pk__lt=bases.case)
        .order_by("submitted_at", "id")
        .values_list("pk", flat=True)
    )


def delete_tagged(tag: str) -> dict[str, int]:
    """Remove everything the benchmark added under ``tag`` (through the ORM, so
    every cascade of the current schema is honoured)."""
    from accounts.models import DeveloperAccount
    from reviews.models import ApiKey, PlatformEventReceipt, ReviewCase

    deleted: dict[str, int] = {}
    with transaction.atomic():
        cases = ReviewCase.objects.filter(key__platform_key_id__startswith=f"pk_{tag}_")
        deleted["cases"] = cases.delete()[1].get("reviews.ReviewCase", 0)
        ApiKey.objects.filter(platform_key_id__startswith=f"pk_{tag}_").delete()
        accounts = DeveloperAccount.objects.filter(
            platform_account_id__startswith=f"acct_{tag}_"
        )
        deleted["accounts"] = accounts.delete()[1].get("accounts.DeveloperAccount", 0)
        PlatformEventReceipt.objects.filter(
            webhook_id__startswith=f"msg_{tag}_"
        ).delete()
    return deleted


def vacuum(tables_to_vacuum: list[str]) -> None:
    connection.close()
    with connection.cursor() as cursor:
        for name in tables_to_vacuum:
            cursor.execute(f'VACUUM (ANALYZE) "{name}"')
