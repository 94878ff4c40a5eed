"""The PostgreSQL statements of the signed intake's hot path (new partner, new key).

``_account_create_in_one_statement`` writes the partner, its contact address and
the ``accounts.account.created`` audit row in one ``INSERT … ON CONFLICT`` round
trip; these tests pin the rows it writes and its behaviour when the partner
already exists or is being created by a concurrent delivery.
"""

from __future__ import annotations

import json
import uuid

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts.models import DeveloperAccount, DeveloperAccountEmail
from reviews import audit, services
from reviews.models import ApiKey, CaseEvent, CheckResult, Criterion, ReviewCase
from reviews.services.ingest import (
    _account_create_in_one_statement,
    _lock_account,
    _lock_key_with_account,
)
from tests.factories import make_account, make_case
from tests.reviews.test_concurrency import concurrent, run_together

pytestmark = pytest.mark.postgres

ROUNDS = 4

WANTED = {
    "name": "Pantry Planner Inc.",
    "contact_email": "Dev@Pantry-Planner.example",
    "contact_name": "Sam Rivera",
    "help_desk_account_id": "",
    "wants_affiliate": True,
    "tastemakers_account_id": "TM-1",
    "affiliate_partner_id": "",
}
FILLED = sorted(name for name, value in WANTED.items() if value)


def requested(account_id: str, key_id: str) -> bytes:
    return json.dumps(
        {
            "type": "production_key.requested",
            "timestamp": "2026-11-30T09:00:00Z",
            "data": {
                "account": {
                    "id": account_id,
                    "name": "Pantry Planner Inc.",
                    "contact_email": "Dev@Pantry-Planner.example",
                },
                "key": {"id": key_id, "name": "Production", "last4": "9f2c"},
            },
        }
    ).encode()


@pytest.mark.django_db
class TestAccountCreateInOneStatement:
    def test_writes_the_partner_its_address_and_the_audit_row(self):
        with CaptureQueriesContext(connection) as queries:
            account = _account_create_in_one_statement("acct_1", WANTED, FILLED)

        assert len(queries) == 1
        stored = DeveloperAccount.objects.get()
        assert account.pk == stored.pk
        assert account._state.adding is False
        for name, value in {"platform_account_id": "acct_1", **WANTED}.items():
            assert getattr(stored, name) == value == getattr(account, name)
        assert stored.created_at == account.created_at
        assert stored.updated_at == account.updated_at
        address = DeveloperAccountEmail.objects.get()
        assert (address.account_id, address.email) == (
            stored.pk,
            "dev@pantry-planner.example",
        )
        event = CaseEvent.objects.get()
        assert (
            event.code,
            event.account_id,
            event.case_id,
            event.actor_id,
            event.actor_kind,
            event.from_state,
            event.to_state,
            event.payload,
        ) == (
            audit.ACCOUNT_CREATED,
            stored.pk,
            None,
            None,
            CaseEvent.ActorKind.PLATFORM,
            "",
            "",
            {"account": "acct_1", "fields": FILLED},
        )

    def test_an_existing_partner_is_left_alone(self):
        _account_create_in_one_statement("acct_1", WANTED, FILLED)
        before = (
            list(DeveloperAccount.objects.values()),
            DeveloperAccountEmail.objects.count(),
            CaseEvent.objects.count(),
        )

        again = _account_create_in_one_statement(
            "acct_1", {**WANTED, "name": "Other"}, FILLED
        )

        assert again is None
        assert (
            list(DeveloperAccount.objects.values()),
            DeveloperAccountEmail.objects.count(),
            CaseEvent.objects.count(),
        ) == before


@pytest.mark.django_db
class TestCaseOpenInOneStatement:
    def test_case_checks_and_audit_row_in_one_round_trip(self):
        account = make_account(affiliate=True)
        earlier = make_case(account=account)
        key = ApiKey.objects.create(platform_key_id="pk_x", account=account)

        with CaptureQueriesContext(connection) as queries:
            case = services.review_case_open(
                key=key,
                account=account,
                integration={"app_name": "Planner"},
                previous_case=earlier,
                attempt=2,
            )

        assert len(queries) == 1
        assert case._state.adding is False
        stored = ReviewCase.objects.get(pk=case.pk)
        for field in ReviewCase._meta.concrete_fields:
            assert getattr(case, field.attname) == getattr(stored, field.attname), (
                field.name
            )
        assert (stored.state, stored.attempt, stored.previous_case_id) == (
            ReviewCase.State.QUEUED,
            2,
            earlier.pk,
        )
        assert stored.integration == {"app_name": "Planner"}
        assert list(
            stored.checks.order_by("id").values_list("criterion_id", flat=True)
        ) == list(
            Criterion.objects.filter(is_active=True)
            .order_by("order", "id")
            .values_list("id", flat=True)
        )
        assert set(stored.checks.values_list("result", "version")) == {
            (CheckResult.Result.UNCHECKED, 0)
        }
        event = CaseEvent.objects.get(case=stored)
        assert (
            event.code,
            event.account_id,
            event.actor_id,
            event.actor_kind,
            event.from_state,
            event.to_state,
            event.payload,
        ) == (
            audit.CASE_RESUBMITTED,
            account.pk,
            None,
            CaseEvent.ActorKind.PLATFORM,
            "",
            ReviewCase.State.QUEUED,
            {"key": "pk_x", "attempt": 2, "previous_case": earlier.reference},
        )


def fields_of(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


@concurrent  # real transactions: the lock statements run outside a savepoint
class TestLocks:
    def test_partner_lock_loads_what_the_orm_loads(self):
        account = make_account(affiliate=True)
        with transaction.atomic(), CaptureQueriesContext(connection) as queries:
            locked = _lock_account(account.platform_account_id)
            assert _lock_account("acct_nobody") is None
        assert fields_of(locked) == fields_of(
            DeveloperAccount.objects.get(pk=account.pk)
        )
        assert locked._state.adding is False
        assert all("FOR UPDATE" in q["sql"] for q in queries[1:3])

    def test_key_lock_locks_the_key_and_loads_its_partner(self):
        account = make_account()
        key = ApiKey.objects.create(
            platform_key_id="pk_x", account=account, name="Production"
        )
        with transaction.atomic(), CaptureQueriesContext(connection) as queries:
            locked = _lock_key_with_account("pk_x")
            assert _lock_key_with_account("pk_nobody") is None
            with CaptureQueriesContext(connection) as more:
                partner = locked.account  # loaded with the key: no query
        assert len(more) == 0
        assert fields_of(locked) == fields_of(ApiKey.objects.get(pk=key.pk))
        assert fields_of(partner) == fields_of(
            DeveloperAccount.objects.get(pk=account.pk)
        )
        assert 'FOR UPDATE OF "reviews_apikey"' in queries[1]["sql"]


@concurrent
class TestNewPartnerConcurrently:
    def test_two_first_requests_of_one_partner_make_one_partner(self):
        for round_ in range(ROUNDS):
            account_id = f"acct_race_{round_}"
            outcomes = run_together(
                *(
                    lambda key_id=f"pk_race_{round_}_{n}": (
                        services.platform_event_ingest(
                            webhook_id=f"msg_{uuid.uuid4().hex}",
                            body=requested(account_id, key_id),
                        )
                    )
                    for n in range(2)
                )
            )

            assert [outcome.value.status for outcome in outcomes] == [202, 202]
            account = DeveloperAccount.objects.get(platform_account_id=account_id)
            assert ReviewCase.objects.filter(account=account).count() == 2
            assert (
                CaseEvent.objects.filter(
                    account=account, code=audit.ACCOUNT_CREATED
                ).count()
                == 1
            )
            assert list(account.emails.values_list("email", flat=True)) == [
                "dev@pantry-planner.example"
            ]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_deletion_racing_a_re_request_withdraws_the_case_it_opened(
    monkeypatch, reviewer
):
    """The deletion waits for the re-request (both lock the partner first)."""
    import threading

    from django.db import connection as db_connection

    from reviews.models import ApiKey, ReviewCase
    from reviews.services import ingest as ingest_module
    from tests.factories import deny_case
    from tests.reviews.test_ingest import deleted, ingest, requested, the_case

    ingest(requested())
    deny_case(the_case(), reviewer)
    opened = threading.Event()
    go_on = threading.Event()
    real_open = ingest_module.review_case_open

    def slow_open(**kwargs):
        case = real_open(**kwargs)
        opened.set()  # the new case exists, uncommitted, partner locked
        assert go_on.wait(10)
        return case

    monkeypatch.setattr(ingest_module, "review_case_open", slow_open)
    answers = {}

    def deliver(name, event):
        try:
            answers[name] = ingest(event)
        finally:
            db_connection.close()

    again = threading.Thread(target=deliver, args=("again", requested()))
    again.start()
    assert opened.wait(10)
    gone = threading.Thread(target=deliver, args=("gone", deleted()))
    gone.start()
    gone.join(0.5)
    assert gone.is_alive(), "the deletion did not wait for the re-request"
    go_on.set()
    again.join(15)
    gone.join(15)

    assert answers["again"].status == 202
    assert answers["gone"].status == 200
    second = the_case(attempt=2)
    assert second.state == ReviewCase.State.WITHDRAWN
    assert ApiKey.objects.get(platform_key_id="pk_1").status == "withdrawn"
    assert not ReviewCase.objects.filter(state__in=ReviewCase.OPEN_STATES).exists()
