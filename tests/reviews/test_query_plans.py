"""The hot reads use indexes: no sequential scan of the case table (issue 4).

A few thousand production-shaped cases (``bench/load.py``'s generator, the same
shape as the 1M benchmark) are loaded and analysed; then the real code runs —
the claim-next service, the queue page (default, and each search kind) and the
support lookup (each kind) through the admin as a reviewer / support — and every
query that touches ``reviews_reviewcase`` is EXPLAINed. The planner's choice on
these statistics must not be a ``Seq Scan on reviews_reviewcase``.
"""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import DeveloperAccount, User
from bench.datagen import LONG_ACCOUNT
from bench.load import load_in_transaction, staff_email
from reviews import services
from reviews.models import ReviewCase

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

CASES = 5000


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _explain(sql: str) -> tuple[list[dict], str]:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
        document = cursor.fetchone()[0]
        cursor.execute("EXPLAIN " + sql)
        text = "\n".join(row[0] for row in cursor.fetchall())
    if isinstance(document, str):
        document = json.loads(document)
    return list(_nodes(document[0]["Plan"])), text


def _case_reads(queries: list[dict]) -> list[str]:
    return [
        query["sql"]
        for query in queries
        if query["sql"].lstrip().upper().startswith(("SELECT", "WITH"))
        and "reviews_reviewcase" in query["sql"]
    ]


def assert_no_case_seq_scan(queries: list[dict], what: str) -> int:
    reads = _case_reads(queries)
    assert reads, f"{what}: no query read reviews_reviewcase"
    for sql in reads:
        nodes, text = _explain(sql)
        scans = [
            node
            for node in nodes
            if node["Node Type"] == "Seq Scan"
            and node.get("Relation Name") == "reviews_reviewcase"
        ]
        assert not scans, f"{what} scans the whole case table:\n{sql}\n\n{text}"
    return len(reads)


@pytest.fixture
def loaded(db):
    load_in_transaction(n=CASES, seed=11)
    long_account = DeveloperAccount.objects.get(platform_account_id=LONG_ACCOUNT)
    case = ReviewCase.objects.filter(account=long_account).order_by("id")[5]
    return {
        "reviewer": User.objects.get(email=staff_email("reviewer01")),
        "support": User.objects.get(email=staff_email("support01")),
        "email": long_account.contact_email,
        "key": case.key.platform_key_id,
        "reference": case.reference,
    }


def _page(client, user, url: str) -> list[dict]:
    client.force_login(user)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, url
    return captured.captured_queries


def test_claim_next_reads_the_queue_through_an_index(loaded):
    with CaptureQueriesContext(connection) as captured:
        case = services.review_case_claim_next(actor=loaded["reviewer"])
    assert case is not None
    locking = [q for q in captured.captured_queries if "SKIP LOCKED" in q["sql"]]
    assert locking, "claim next no longer locks with SKIP LOCKED"
    assert_no_case_seq_scan(locking, "claim next")


def test_queue_page_reads_cases_through_indexes(client, loaded):
    for query in (None, "email", "key", "reference"):
        url = "/reviews/reviewcase/"
        if query:
            url += f"?q={loaded[query]}"
        queries = _page(client, loaded["reviewer"], url)
        assert_no_case_seq_scan(queries, f"queue {url}")


def test_support_lookup_reads_cases_through_indexes(client, loaded):
    for query in ("email", "key", "reference"):
        url = f"/reviews/lookup/?q={loaded[query]}"
        queries = _page(client, loaded["support"], url)
        assert_no_case_seq_scan(queries, f"lookup {url}")


def test_the_check_sees_a_sequential_scan(loaded):
    """The guard itself: an unindexed read of the case table is caught."""
    with pytest.raises(AssertionError, match="scans the whole case table"):
        assert_no_case_seq_scan(
            [{"sql": "SELECT id FROM reviews_reviewcase WHERE escalation_note = 'x'"}],
            "an unindexed filter",
        )
